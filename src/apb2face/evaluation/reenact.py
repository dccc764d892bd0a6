"""Re-enacting a dataset clip: a reference driven frame by frame by the clip's own audio, pose and eye openness.
Shared by `evaluate` (each identity driven by its own held-out clips) and `grid` (every reference by every clip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from apb2face.data.format import Clip


def generate_clip(
    pipe: Any,
    reference: Any,
    clip: Clip,
    num_frames: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Frames (n, S, S, 3) of `clip` re-enacted from `reference`: each frame driven by its own audio window, pose
    and eye openness, through the pipeline's per-frame API."""
    features = pipe.audio_features(clip.audio, clip.sample_rate)
    out = []
    for start in range(0, num_frames, batch_size):
        idx = np.arange(start, min(num_frames, start + batch_size))
        windows = pipe.audio_windows(features, idx, clip.fps)
        frames, _ = pipe.step(reference, windows, clip.pose[idx], clip.eyes[idx])
        out.append(frames)
        if progress is not None:
            progress(len(idx))
    return np.concatenate(out)
