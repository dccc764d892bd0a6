"""The one face-mesh measuring loop of `evaluate` and `decouple`, on real rendered faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apb2face.data.format import Dataset
from apb2face.evaluation.face_measure import MIN_DETECT_SIDE, measure_face_mesh, upscale_for_detection


def test_measures_rendered_faces_like_the_dataset_truth(tiny_dataset: Path) -> None:
    """64 px synthetic faces: the mesh finds them (after upscaling), the measured pose is close to the renderer's,
    and tracking (video) and reading each frame on its own agree."""
    ds = Dataset(tiny_dataset)
    clip = ds.load_clip(ds.clips("test")[0])
    frames = np.asarray(clip.frames[:6])
    tracked = measure_face_mesh(frames, video=True)
    single = measure_face_mesh(frames, video=False)
    assert tracked.found.all() and single.found.all()
    assert tracked.landmarks.shape == (6, 478, 2) and np.isfinite(tracked.landmarks).all()
    assert (tracked.landmarks >= -8).all() and (tracked.landmarks <= 72).all()  # pixels of the 64 px frame
    assert np.abs(tracked.pose - clip.pose[:6]).mean() < 10
    assert np.abs(tracked.pose - single.pose).mean() < 3
    assert ((tracked.ear > 0) & (tracked.ear < 1)).all() and (tracked.mouth >= 0).all()


def test_no_face_reads_nan() -> None:
    blank = np.full((2, 64, 64, 3), 128, np.uint8)
    measures = measure_face_mesh(blank, video=False)
    assert not measures.found.any()
    assert np.isnan(measures.pose).all() and np.isnan(measures.ear).all() and np.isnan(measures.landmarks).all()


def test_small_frames_are_upscaled_for_the_mesh() -> None:
    probe, factor = upscale_for_detection(np.zeros((64, 64, 3), np.uint8))
    assert factor == MIN_DETECT_SIDE / 64 and probe.shape == (MIN_DETECT_SIDE, MIN_DETECT_SIDE, 3)
    big = np.zeros((300, 300, 3), np.uint8)
    assert upscale_for_detection(big)[1] == 1.0 and upscale_for_detection(big)[0] is big
