"""Re-enacting a dataset clip: a reference driven frame by frame by the clip's own audio, pose and eye openness.
Shared by `evaluate` (each identity driven by its own held-out clips) and `grid` (every reference by every clip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from apb2face.data.format import Clip


class Reenactment(NamedTuple):
    frames: np.ndarray  # (n, S, S, 3) uint8
    geometry: np.ndarray  # (n, K, 2) the fuser's landmarks (models.config.GEOMETRY_POINTS) in [0, 1] of the crop


def reenact_clip(
    pipe: Any,
    reference: Any,
    clip: Clip,
    num_frames: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> Reenactment:
    """`clip` re-enacted from `reference`: each frame driven by its own audio window, pose and eye openness, through
    the pipeline's per-frame API; the frames, and the geometry the fuser predicted for them."""
    features = pipe.audio_features(clip.audio, clip.sample_rate)
    frames, geometry = [], []
    for start in range(0, num_frames, batch_size):
        idx = np.arange(start, min(num_frames, start + batch_size))
        windows = pipe.audio_windows(features, idx, clip.fps)
        images, landmarks = pipe.step(reference, windows, clip.pose[idx], clip.eyes[idx])
        frames.append(images)
        geometry.append(np.asarray(landmarks, np.float32).reshape(len(idx), -1, 2))
        if progress is not None:
            progress(len(idx))
    return Reenactment(np.concatenate(frames), np.concatenate(geometry))
