from __future__ import annotations

import numpy as np
import pytest

from apb2face.errors import UserError
from apb2face.inference.motion import (
    NaturalMotion,
    blink_events,
    ears_to_openness,
    fit_length,
    load_blink,
    load_pose,
    natural_motion,
)


def test_natural_blinks_every_2_to_6_seconds_with_both_eyes():
    fps = 25.0
    m = natural_motion(int(120 * fps), fps=fps, seed=3)
    events = blink_events(m.eyes, fps)
    assert 120 / 6 - 1 <= len(events) <= 120 / 2 + 1
    starts = np.array([s for s, _ in events])
    gaps = np.diff(starts)
    assert gaps.min() >= 2.0 - 0.3 and gaps.max() <= 6.0 + 0.3, gaps
    assert starts[0] <= 3.5  # the first blink comes early: never a long initial stare
    # 150-250 ms blinks: at 25 fps the "mostly closed" part spans 1-4 frames, and the lids really shut
    for _start, duration in events:
        assert 1 / fps <= duration <= 0.25 + 1e-6
    assert m.eyes.min() < 0.05
    np.testing.assert_array_equal(m.eyes[:, 0], m.eyes[:, 1])
    assert np.median(m.eyes) == pytest.approx(1.0)


def test_natural_pose_sways_gently_and_smoothly():
    fps = 25.0
    m = natural_motion(int(30 * fps), fps=fps, seed=1, centre=(5.0, -2.0, 0.0))
    assert m.pose.shape == (750, 3) and m.pose.dtype == np.float32
    deviation = m.pose - np.array([5.0, -2.0, 0.0])
    assert (np.abs(deviation).max(axis=0) <= np.array([3.0, 2.0, 1.5]) + 1e-4).all()
    assert (m.pose.std(axis=0) > 0.2).all()  # every axis moves: no frozen head
    assert np.abs(np.diff(m.pose, axis=0)).max() < 0.3  # degrees per frame: smooth, no jumps


def test_natural_motion_is_seeded_and_incremental():
    a = natural_motion(300, seed=7)
    b = natural_motion(300, seed=7)
    c = natural_motion(300, seed=8)
    np.testing.assert_array_equal(a.pose, b.pose)
    np.testing.assert_array_equal(a.eyes, b.eyes)
    assert not np.allclose(a.pose, c.pose)
    gen = NaturalMotion(seed=7)
    parts = [gen.take(k) for k in (1, 17, 100, 0, 182)]
    np.testing.assert_allclose(np.concatenate([p.pose for p in parts]), a.pose, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([p.eyes for p in parts]), a.eyes)


def test_fit_length_resamples_then_pads_or_cuts():
    ramp = np.arange(25, dtype=np.float64)[:, None]  # 1 s at 25 fps
    out = fit_length(ramp, 50, fps=50.0)  # same second at 50 fps = 49 rows, padded with the last row to 50
    assert out.shape == (50, 1)
    np.testing.assert_allclose(out[:49, 0], np.arange(49) / 2)
    assert out[49, 0] == 24
    assert fit_length(ramp, 10, fps=25.0).shape == (10, 1)


def test_load_pose_csv_with_header_and_npy(tmp_path):
    csv = tmp_path / "pose.csv"
    csv.write_text("yaw,pitch,roll\n" + "\n".join(f"{i},{-i / 2},0.5" for i in range(20)) + "\n")
    pose = load_pose(csv, 25)
    assert pose.shape == (25, 3)
    assert pose[3].tolist() == [3.0, -1.5, 0.5] and pose[-1].tolist() == [19.0, -9.5, 0.5]
    npy = tmp_path / "pose.npy"
    np.save(npy, np.zeros((30, 3)))
    assert load_pose(npy, 25).shape == (25, 3)


def test_load_blink_whitespace_table(tmp_path):
    f = tmp_path / "blink.txt"
    f.write_text("# left right\n1 1\n0.5 0.4\n0 0\n")
    eyes = load_blink(f, 3)
    np.testing.assert_allclose(eyes, [[1, 1], [0.5, 0.4], [0, 0]])


@pytest.mark.parametrize(
    "content, message",
    [
        ("1,2\n3,4\n", "expected 3 values"),
        ("yaw,pitch,roll\n", "no rows"),
        ("1,2,3\n4,x,6\n", "line 2: not a number"),
        ("1,2,3\n400,0,0\n", "within ±90"),
        ("1,2,nan\n", "NaN"),
    ],
)
def test_bad_pose_files_name_the_file_and_problem(tmp_path, content, message):
    f = tmp_path / "pose.csv"
    f.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        load_pose(f, 10)
    assert str(f) in str(err.value)


def test_bad_blink_and_npy_files(tmp_path):
    f = tmp_path / "blink.csv"
    f.write_text("0.5,2.0\n")
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        load_blink(f, 5)
    bad = tmp_path / "blink.npy"
    np.save(bad, np.zeros((4, 3)))
    with pytest.raises(UserError, match=r"shape \(frames, 2\)"):
        load_blink(bad, 5)
    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"not numpy at all")
    with pytest.raises(UserError, match="cannot read .npy"):
        load_pose(corrupt, 5)
    binary = tmp_path / "b.csv"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UserError):
        load_pose(binary, 5)
    with pytest.raises(UserError, match="file not found"):
        load_pose(tmp_path / "missing.csv", 5)


def test_ears_to_openness_normalises_per_eye_like_prepare():
    from apb2face.data.face import eye_openness

    ears = np.column_stack([np.full(100, 0.30), np.full(100, 0.20)])
    ears[50] = [0.03, 0.02]
    eyes = ears_to_openness(ears)
    assert eyes[0].tolist() == pytest.approx([1.0, 1.0])  # each eye against its own open level
    assert eyes[50].tolist() == pytest.approx([0.0, 0.0])
    np.testing.assert_allclose(eyes, eye_openness(ears, [0.30, 0.20]))


def test_motion_from_driving_video(tmp_path):
    from apb2face.data.video import write_video
    from apb2face.inference.motion import motion_from_video
    from tests.inference.helpers import astronaut

    photo = astronaut()[:, 64:448]  # 512 x 384
    # 1.2 s at 30 fps, the head drifting right: resampled by timestamp to 25 fps, then cut to 25 rows
    frames = [np.roll(photo, 2 * i, axis=1) for i in range(36)]
    video = tmp_path / "driving.mp4"
    write_video(video, frames, fps=30)
    m = motion_from_video(video, 25, fps=25.0)
    assert m.pose.shape == (25, 3) and m.eyes.shape == (25, 2)
    assert np.isfinite(m.pose).all() and (np.abs(m.pose) < 45).all()
    assert (m.eyes >= 0).all() and (m.eyes <= 1).all() and np.median(m.eyes) > 0.8
    # the same face translated: only the perspective angle changes (a few degrees of yaw), pitch and roll stay
    assert np.ptp(m.pose, axis=0)[0] < 10 and np.ptp(m.pose, axis=0)[1:].max() < 3

    blank = tmp_path / "blank.mp4"
    write_video(blank, [np.full((96, 96, 3), 90, np.uint8)] * 5, fps=25)
    with pytest.raises(UserError, match="no face found in any frame") as err:
        motion_from_video(blank, 10)
    assert str(blank) in str(err.value)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(UserError, match="cannot read video|no video stream"):
        motion_from_video(text, 10)
