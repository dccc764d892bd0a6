"""Scenes with several people: the speakers' audio (files, channels, a timeline), finding and tracking every face of
an image or a video, pairing faces with identities and speakers, and whole scenes rendered (real face mesh, real
face recogniser, real PyAV, real espeak-ng speech)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from apb2face.data.face import FaceMesh, mouth_opening
from apb2face.data.video import iter_frames, probe
from apb2face.errors import UserError
from apb2face.inference.pipeline import SHIPPED_CHECKPOINTS, APB2FacePipeline
from apb2face.inference.scene import (
    SceneConfig,
    cast_faces,
    face_motion,
    generate_scene,
    read_timeline,
    speakers_from_channels,
    speakers_from_files,
    speakers_from_timeline,
    track_scene,
)
from tests.data.helpers import write_test_video
from tests.inference.helpers import make_scene_checkpoint, speech, two_person_scene, write_wav

RATE = 16000


def write_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> APB2FacePipeline:
    return APB2FacePipeline.from_pretrained(make_scene_checkpoint(tmp_path_factory.mktemp("ckpt") / "scene"))


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png(tmp_path_factory.mktemp("scene") / "two.png", two_person_scene())


# ------------------------------------------------------------------------------------------------------ audio


def test_timeline_rows_are_read_sorted_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "turns.csv"
    path.write_text("start,end,name\n2.0,3.5,id03\n0,1.5,id00  # first\n\n")
    turns = read_timeline(path)
    assert [(t.start, t.end, t.name, t.line) for t in turns] == [(0.0, 1.5, "id00", 3), (2.0, 3.5, "id03", 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,2,id00\n1.5,3,id03\n", "lines 1 and 2 overlap"),
        ("0,2,id00\n3,2.5,id03\n", "line 2: a turn needs 0 <= start < end"),
        ("0,2,id00\n3,x,id03\n", "line 2: expected start,end,name"),
        ("# nothing\n", "timeline has no turns"),
    ],
)
def test_bad_timelines_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "turns.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        read_timeline(path)
    assert str(path) in str(info.value)


def test_tracks_of_different_lengths_are_padded_with_one_line(tmp_path: Path, caplog) -> None:
    loud = 0.9 * np.sin(np.arange(RATE) / RATE * 2 * np.pi * 220).astype(np.float32)
    a = write_wav(tmp_path / "a.wav", loud, RATE)
    b = write_wav(tmp_path / "b.wav", loud[: RATE // 2], RATE)
    with caplog.at_level(logging.INFO, logger="apb2face.inference.scene"):
        audio = speakers_from_files([("id00", a), ("id03", b)], sample_rate=RATE)
    padded = [r for r in caplog.records if "padded with silence" in r.getMessage()]
    assert len(padded) == 1 and "id03 0.50 s" in padded[0].getMessage()
    assert audio.tracks.shape == (2, RATE) and not audio.tracks[1, RATE // 2 + 10 :].any()
    # two loud tracks together would clip: the mix is scaled to a peak of 1
    assert np.abs(audio.mix).max() == pytest.approx(1.0, abs=1e-3)


def test_channels_are_speakers_in_order_and_must_match(tmp_path: Path) -> None:
    voice, rate = speech()
    stereo = np.stack([voice, np.zeros_like(voice)], axis=1)
    path = write_wav(tmp_path / "two.wav", stereo, rate)
    audio = speakers_from_channels(path, ["id00", "id03"], sample_rate=RATE)
    assert audio.names == ("id00", "id03") and np.abs(audio.tracks[0]).max() > 0.1 and not audio.tracks[1].any()
    with pytest.raises(UserError, match=r"2 channel\(s\) but 3 speaker\(s\)") as info:
        speakers_from_channels(path, ["id00", "id03", "id01"])
    assert str(path) in str(info.value)


def test_timeline_splits_one_mix_into_turns(tmp_path: Path) -> None:
    voice, rate = speech()
    mix = write_wav(tmp_path / "mix.wav", voice, rate)
    turns = tmp_path / "turns.csv"
    turns.write_text("0,0.5,id03\n0.5,1.0,id00\n")
    audio = speakers_from_timeline(mix, turns, sample_rate=RATE)
    assert audio.names == ("id03", "id00")  # order of first appearance
    half = RATE // 2
    assert not audio.tracks[0, half:].any() and not audio.tracks[1, :half].any() and not audio.tracks[1, RATE:].any()
    np.testing.assert_allclose(audio.tracks.sum(axis=0)[:RATE], audio.mix[:RATE])
    with pytest.raises(UserError, match="speaker id03 is not among the --speaker names"):
        speakers_from_timeline(mix, turns, names=["id00"])


# ------------------------------------------------------------------------------------------------------ track


def test_every_face_of_a_still_is_found_left_to_right(scene_png: Path) -> None:
    scene = track_scene(scene_png, SceneConfig())
    assert scene.still and scene.shape == (160, 320) and len(scene.faces) == 2
    centres = [face.boxes[0, 0] for face in scene.faces]
    assert 40 < centres[0] < 120 and 200 < centres[1] < 280


def test_a_scene_without_a_face_is_refused(tmp_path: Path) -> None:
    empty = write_png(tmp_path / "wall.png", np.full((120, 200, 3), 90, np.uint8))
    with pytest.raises(UserError, match="no face found in the scene") as info:
        track_scene(empty, SceneConfig())
    assert str(empty) in str(info.value)


def two_person_video(path: Path) -> Path:
    """20 frames: two people drift; the right one leaves for frames 8-11."""
    people = two_person_scene(side=128)
    frames = []
    for k in range(20):
        frame = np.full((176, 360, 3), 70, np.uint8)
        dx = int(6 * np.sin(k / 4))
        frame[24:152, 20 + dx : 148 + dx] = people[:, :128]
        if not 8 <= k < 12:
            frame[24:152, 212 - dx : 340 - dx] = people[:, 128:]
        frames.append(frame)
    return write_test_video(path, frames)


def test_a_video_keeps_each_face_on_its_own_track(tmp_path: Path) -> None:
    """The tracks never swap, and the right face's absence is a gap in its track."""
    scene = track_scene(two_person_video(tmp_path / "two.mp4"), SceneConfig())
    assert not scene.still and len(scene.faces) == 2
    left, right = scene.faces
    assert left.found.all() and (left.boxes[:, 0] < 150).all()
    assert not right.found[8:12].any() and right.found[:8].all() and right.found[12:].all()
    assert (right.raw_boxes[right.found, 0] > 210).all()


# ------------------------------------------------------------------------------------------------------- cast


def test_faces_are_matched_to_speakers_by_who_they_are(pipe: APB2FacePipeline, scene_png: Path) -> None:
    scene = track_scene(scene_png, SceneConfig())
    faces = cast_faces(pipe, scene, ("id03",), "identity")
    assert [(f.identity, f.speaker) for f in faces] == [("id00", None), ("id03", "id03")]
    assert all(f.distance is not None and f.distance < 0.6 for f in faces)
    # by position instead: the first speaker takes the leftmost face, whoever it is
    faces = cast_faces(pipe, scene, ("id03",), "left-to-right")
    assert [(f.identity, f.speaker) for f in faces] == [("id03", "id03"), (None, None)]


def test_speakers_the_scene_cannot_hold_are_refused(pipe: APB2FacePipeline, scene_png: Path) -> None:
    scene = track_scene(scene_png, SceneConfig())
    with pytest.raises(UserError, match=r"3 speakers \(id00, id03, id01\) but the scene has 2 face\(s\)"):
        cast_faces(pipe, scene, ("id00", "id03", "id01"), "identity")
    with pytest.raises(UserError, match=r"speaker id01 is no face in the scene \(faces left to right: id00, id03\)"):
        cast_faces(pipe, scene, ("id01",), "identity")


# ----------------------------------------------------------------------------------------------------- render


def test_a_still_scene_keeps_its_size_and_pastes_every_face(
    pipe: APB2FacePipeline, scene_png: Path, tmp_path: Path
) -> None:
    voice, rate = speech()
    audio = speakers_from_files([("id00", write_wav(tmp_path / "a.wav", voice[:rate], rate))])
    out = tmp_path / "scene.mp4"
    outside: list[float] = []
    pasted_faces: list[int] = []
    still = two_person_scene()

    def check(k: int, s: int, frame: np.ndarray, pasted: list) -> None:
        masks = sum(p.full_mask(frame.shape[:2]) for p in pasted if p is not None)
        pasted_faces.append(sum(p is not None for p in pasted))
        outside.append(float(np.abs(frame.astype(int) - still)[masks == 0].max(initial=0)))

    report = generate_scene(pipe, scene_png, audio, out, on_frame=check)
    info = probe(out)
    assert (info.width, info.height) == (320, 160) and info.has_audio and report.frames == 25 == info.num_frames
    assert [f.speaker for f in report.faces] == ["id00", None]
    assert set(pasted_faces) == {2} and max(outside) == 0  # both faces pasted, nothing else touched


def test_each_face_of_a_still_sways_and_blinks_on_its_own(scene_png: Path) -> None:
    scene = track_scene(scene_png, SceneConfig())
    source = np.zeros(200, np.int64)  # 8 s of a still
    (pose_a, eyes_a), (pose_b, eyes_b) = (face_motion(scene, i, source, SceneConfig()) for i in (0, 1))
    assert pose_a.shape == (200, 3) and eyes_a.shape == (200, 2)
    assert np.ptp(pose_a[:, 0]) > 1.0 and np.ptp(pose_b[:, 0]) > 1.0  # they sway
    assert not np.allclose(pose_a, pose_b) and not np.allclose(eyes_a, eyes_b)  # not in step
    assert eyes_a.min() < 0.5 and eyes_b.min() < 0.5  # both blink within 8 s
    assert np.abs(pose_a.mean(0) - scene.faces[0].pose[0]).max() < 3.0  # around the face's own pose


def test_a_video_scene_plays_back_and_forth_with_each_face_where_it_is(pipe: APB2FacePipeline, tmp_path: Path) -> None:
    voice, rate = speech()
    audio = speakers_from_files([("id03", write_wav(tmp_path / "b.wav", voice[: int(1.2 * rate)], rate))])
    out = tmp_path / "scene.mp4"
    seen: dict[int, tuple[int, bool, bool]] = {}
    report = generate_scene(
        pipe,
        two_person_video(tmp_path / "two.mp4"),
        audio,
        out,
        on_frame=lambda k, s, f, pasted: seen.setdefault(k, (s, pasted[0] is not None, pasted[1] is not None)),
    )
    assert report.frames == 30 == probe(out).num_frames and (probe(out).width, probe(out).height) == (360, 176)
    sources = [seen[k][0] for k in range(30)]
    assert sources[:20] == list(range(20)) and sources[20:] == list(range(18, 8, -1))  # ping-pong, no jump
    assert all(left for _s, left, _r in seen.values())
    assert all(right == (not 8 <= s < 12) for s, _l, right in seen.values())  # the right face only where it is
    assert [f.speaker for f in report.faces] == [None, "id03"]


@pytest.mark.parametrize("checkpoint", SHIPPED_CHECKPOINTS)
def test_the_shipped_models_let_the_listener_keep_its_mouth_closed(
    checkpoint: str, scene_png: Path, tmp_path: Path
) -> None:
    """Each shipped checkpoint: id00 speaks, id03 listens; the face mesh reads both mouths off the output."""
    voice, rate = speech()
    audio = speakers_from_files([("id00", write_wav(tmp_path / "a.wav", voice, rate))])
    out = tmp_path / "scene.mp4"
    generate_scene(APB2FacePipeline.from_pretrained(checkpoint), scene_png, audio, out)
    mouths = {"left": [], "right": []}
    with FaceMesh(video=False) as mesh:
        for _t, frame in iter_frames(out):
            for side, half in (("left", frame[:, :160]), ("right", frame[:, 160:])):
                points = mesh.detect(cv2.resize(half, (320, 320), interpolation=cv2.INTER_CUBIC))
                mouths[side].append(np.nan if points is None else mouth_opening(points))
    left, right = np.asarray(mouths["left"]), np.asarray(mouths["right"])
    # The speaker's peaks against the listener's, both as a 95th percentile: the face mesh reads a 160 px face, and
    # one frame's reading moves by 0.01-0.03 with nothing visible (even with the thread count), which a ratio of two
    # single-frame maxima turned into a coin toss. Every listener frame must still stay closed.
    assert np.nanpercentile(left, 95) > 2 * np.nanpercentile(right, 95)
    assert np.nanmax(right) < 0.15
