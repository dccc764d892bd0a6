"""The output follows the new audio: its sound (the new audio, or with `mix` the video's own audio under it) and its
length (the video played forward, then backward, then forward ... for as long as the new audio lasts)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from apb2face.data import audio as A
from apb2face.data.video import probe
from apb2face.inference.revoice.config import RevoiceConfig

log = logging.getLogger(__name__)


def pingpong(num_ticks: int, count: int, start: int = 0) -> np.ndarray:
    """`count` tick indices playing 0..num_ticks-1 forward, then backward, then forward ... (the turning frames are
    not repeated, so motion never stops or jumps), from output frame `start` on (a stream takes them piece by
    piece)."""
    if num_ticks < 1:
        raise ValueError("num_ticks must be at least 1")
    k = np.arange(start, start + count)
    if num_ticks == 1:
        return np.zeros(count, np.int64)
    period = 2 * (num_ticks - 1)
    j = k % period
    return np.where(j < num_ticks, j, period - j).astype(np.int64)


def soundtrack(new: np.ndarray, sample_rate: int, video: str | Path, config: RevoiceConfig) -> np.ndarray:
    """The output's audio: the new audio, or with `mix` the video's own audio under it (once from the start, at
    `mix_gain`), scaled down only if the sum would clip."""
    if not config.mix:
        return new
    if not probe(video).has_audio:
        log.warning("%s has no audio to mix under the new one", video)
        return new
    old = A.load_audio(video, sample_rate, max_seconds=config.max_seconds)[: len(new)]
    mixed = new.astype(np.float32).copy()
    mixed[: len(old)] += config.mix_gain * old
    peak = float(np.abs(mixed).max(initial=0.0))
    return mixed / peak if peak > 1.0 else mixed
