"""Head pose and blinks of the built-in people: schedules drawn from their own random streams, never from the audio
(so that a model trained on them cannot learn pose or blinks from speech)."""

from __future__ import annotations

import numpy as np


def pose_track(
    rng: np.random.Generator, num_frames: int, fps: float, limits: tuple[float, float, float] = (15.0, 8.0, 6.0)
) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees: a sum of slow sinusoids per axis, kept within the limits."""
    t = np.arange(num_frames) / fps
    out = np.zeros((num_frames, 3))
    for axis, limit in enumerate(limits):
        k = 3
        freqs = rng.uniform(0.05, 0.4, k)
        phases = rng.uniform(0, 2 * np.pi, k)
        amps = rng.uniform(0.3, 1.0, k)
        amps /= amps.sum()
        offset = rng.uniform(-0.3, 0.3)
        wave = offset + (1 - abs(offset)) * (
            amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])
        ).sum(0)
        out[:, axis] = limit * rng.uniform(0.5, 1.0) * wave
    return out.astype(np.float32)


def blink_track(rng: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
    """(N, 2) eye openness (left, right): open, with blinks every 2-6 s lasting 150-250 ms."""
    t = np.arange(num_frames) / fps
    closure = np.zeros(num_frames)
    start = rng.uniform(0.2, 3.0)
    duration = num_frames / fps
    while start < duration:
        length = rng.uniform(0.15, 0.25)
        close_part = 0.4 * length  # lids drop faster than they rise
        u = t - start
        down = (u >= 0) & (u < close_part)
        up = (u >= close_part) & (u < length)
        closure[down] = np.maximum(closure[down], np.sin(0.5 * np.pi * u[down] / close_part) ** 2)
        closure[up] = np.maximum(closure[up], np.cos(0.5 * np.pi * (u[up] - close_part) / (length - close_part)) ** 2)
        start += length + rng.uniform(2.0, 6.0)
    depth = rng.uniform(0.9, 1.0, 2)  # one eye may not close fully
    openness = 1 - closure[:, None] * depth[None, :]
    return openness.astype(np.float32)
