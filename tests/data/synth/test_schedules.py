"""Head pose and blink schedules: within their limits, blinks every 2-6 s, a pure function of their random stream."""

from __future__ import annotations

import numpy as np

from apb2face.data import synth


def test_pose_stays_within_its_limits_and_moves() -> None:
    pose = synth.pose_track(np.random.default_rng(0), 500, 25.0, limits=(15.0, 8.0, 6.0))
    assert pose.shape == (500, 3)
    assert np.all(np.abs(pose) <= np.array([15.0, 8.0, 6.0]))
    assert np.all(pose.std(0) > 0.2)  # every axis moves
    assert np.abs(np.diff(pose, axis=0)).max() < 1.0  # slowly: under a degree per frame


def test_blinks_every_two_to_six_seconds() -> None:
    fps = 25.0
    eyes = synth.blink_track(np.random.default_rng(1), int(60 * fps), fps)
    closed = eyes[:, 0] < 0.5
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) / fps
    gaps = np.diff(starts)
    assert len(starts) >= 8 and gaps.min() >= 2.0 and gaps.max() <= 6.5
    assert eyes.min() < 0.1 and np.median(eyes) == 1.0


def test_same_stream_same_schedule() -> None:
    a = synth.blink_track(np.random.default_rng(7), 300, 25.0)
    b = synth.blink_track(np.random.default_rng(7), 300, 25.0)
    c = synth.blink_track(np.random.default_rng(8), 300, 25.0)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
