"""Audio/video offset and clip planning: pure functions of per-frame signals (mouth opening, audio RMS, track ids).

The offset is found by cross-correlating the mouth opening with the audio RMS over +-max_offset frames and is tested
against circularly shifted audio; it is corrected only when the peak is clear. Clips are tracks cut at pauses in the
(corrected) audio, between min and max length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from apb2face.data.prepare.jobs import PrepareConfig


def silence_mask(rms: np.ndarray, silence_db: float) -> np.ndarray:
    """Frames whose RMS lies `silence_db` (negative) below the loud level (95th percentile), or is digital silence."""
    loud = float(np.percentile(rms, 95)) if rms.size else 0.0
    if loud <= 1e-6:
        return np.ones(rms.shape, dtype=bool)
    level = 20 * np.log10(np.maximum(rms, 1e-9) / loud)
    return level < silence_db


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def plan_clips(
    segments: list[tuple[int, int]], pause_cuts: np.ndarray, quietness: np.ndarray, min_len: int, max_len: int
) -> list[tuple[int, int]]:
    """Cut each [start, end) segment at the given pause frames into clips of min_len..max_len frames.

    A pause cut is taken when both sides keep at least min_len frames; a piece still longer than max_len is cut at
    its quietest frame (lowest `quietness`) that leaves min_len on each side. Segments shorter than min_len are
    dropped."""
    clips = []
    for s, e in segments:
        if e - s < min_len:
            continue
        cuts = [s]
        for c in np.asarray(pause_cuts, dtype=np.int64):
            if s < c < e and c - cuts[-1] >= min_len and e - c >= min_len:
                cuts.append(int(c))
        cuts.append(e)
        for a, b in zip(cuts[:-1], cuts[1:]):
            clips += _cap_length(a, b, quietness, min_len, max_len)
    return clips


def _cap_length(a: int, b: int, quietness: np.ndarray, min_len: int, max_len: int) -> list[tuple[int, int]]:
    """[a, b) cut at its quietest frames into pieces of at most max_len frames (each side keeping min_len)."""
    pieces = []
    while b - a > max_len:
        lo, hi = a + min_len, min(b - min_len, a + max_len)
        c = lo + int(np.argmin(quietness[lo : hi + 1])) if hi >= lo else a + max_len
        pieces.append((a, c))
        a = c
    return pieces + [(a, b)]


def cut_clips(
    segment: np.ndarray, rms: np.ndarray, n: int, cfg: PrepareConfig
) -> tuple[list[tuple[int, int]], int | None]:
    """Clips [start, end) over the first n frames of a video whose frames carry track ids `segment` (-1 = no face),
    and the first test frame for split=time (else None): tracks are cut at pauses of the audio."""
    seg = segment[:n].copy()
    test_from = None
    if cfg.split == "time" and cfg.test_fraction > 0:
        test_from = int(math.floor(n * (1.0 - cfg.test_fraction)))
        seg[test_from:] = np.where(seg[test_from:] >= 0, seg[test_from:] + (1 << 30), -1)  # no clip spans the cut
    segments = []
    for s, e in runs(seg >= 0):
        bounds = [s] + [i for i in range(s + 1, e) if seg[i] != seg[i - 1]] + [e]
        segments += list(zip(bounds[:-1], bounds[1:]))
    silent = silence_mask(rms, cfg.silence_db)
    pause_len = max(1, round(cfg.pause_seconds * cfg.fps))
    cuts = np.array([(a + b) // 2 for a, b in runs(silent) if b - a >= pause_len], dtype=np.int64)
    quiet = np.convolve(rms, np.ones(5) / 5, mode="same")
    return plan_clips(segments, cuts, quiet, cfg.min_clip_frames, cfg.max_clip_frames), test_from


@dataclass
class OffsetEstimate:
    """Audio/video offset. frames > 0: the audio is late (a mouth movement at frame t sounds at t + frames)."""

    frames: int = 0
    r: float = 0.0  # correlation at the best lag
    r_zero: float = 0.0  # correlation without shifting
    null95: float = 0.0  # 95th percentile of the best-lag correlation with circularly shifted audio
    clear: bool = False
    applied: bool = False
    reason: str = ""


def _lagged_corr(x: np.ndarray, y: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Pearson r of x[t] with y[t + lag] over frames where both are finite, for each lag."""
    n = len(x)
    out = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        a, b = (x[: n - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: n + lag])
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10:
            continue
        a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
        den = math.sqrt(float((a * a).sum() * (b * b).sum()))
        out[i] = float((a * b).sum()) / den if den > 0 else np.nan
    return out


def estimate_offset(mouth: np.ndarray, rms: np.ndarray, cfg: PrepareConfig, draws: int = 100) -> OffsetEstimate:
    """Cross-correlate mouth opening (NaN where no face) with audio RMS over +-cfg.max_offset_frames and decide whether
    the best lag is clear: r >= offset_min_r, above the circular-shift null by offset_margin, not at the search
    edge, and better than no shift. Only clear offsets of at least offset_min_frames are to be applied."""
    n = min(len(mouth), len(rms))
    x, y = np.asarray(mouth[:n], np.float64), np.asarray(rms[:n], np.float64)
    valid = int(np.isfinite(x).sum())
    est = OffsetEstimate()
    max_lag = min(cfg.max_offset_frames, max(1, n // 4))
    if valid < max(3 * max_lag, int(2 * cfg.fps)) or float(np.nanstd(x)) < 1e-6 or float(np.std(y)) < 1e-9:
        est.reason = "too little face or speech to measure"
        return est
    lags = np.arange(-max_lag, max_lag + 1)
    c = _lagged_corr(x, y, lags)
    if not np.isfinite(c).any():
        est.reason = "too little overlap to measure"
        return est
    best = int(np.nanargmax(c))
    est.frames, est.r, est.r_zero = int(lags[best]), float(c[best]), float(c[max_lag])
    est.null95 = _shifted_null(x, y, lags, cfg.fps, draws)
    _judge(est, max_lag, valid, cfg)
    return est


def _shifted_null(x: np.ndarray, y: np.ndarray, lags: np.ndarray, fps: float, draws: int) -> float:
    """95th percentile of the best-lag correlation of x with circularly shifted copies of y (seeded)."""
    n = len(x)
    rng = np.random.default_rng(0)
    min_shift = int(fps) if n > 4 * fps else max(1, n // 4)
    nulls = []
    for _ in range(draws):
        shifted = np.roll(y, int(rng.integers(min_shift, n - min_shift + 1)))
        nulls.append(np.nanmax(_lagged_corr(x, shifted, lags)))
    return float(np.nanpercentile(nulls, 95))


def _judge(est: OffsetEstimate, max_lag: int, valid: int, cfg: PrepareConfig) -> None:
    """Set whether the measured peak is clear, whether it is to be applied, and why (in place)."""
    if abs(est.frames) == max_lag:
        est.reason = "peak at the edge of the search range"
    elif est.r < cfg.offset_min_r:
        est.reason = f"peak r={est.r:.2f} below {cfg.offset_min_r}"
    elif est.r < est.null95 + cfg.offset_margin:
        est.reason = f"peak r={est.r:.2f} not above shifted-audio null {est.null95:.2f} + {cfg.offset_margin}"
    elif valid < cfg.offset_min_seconds * cfg.fps:
        est.reason = (
            f"peak r={est.r:.2f}, but only {valid / cfg.fps:.1f} s with a face (< {cfg.offset_min_seconds:g} s"
            " needed to trust it)"
        )
    else:
        est.clear = True
        if abs(est.frames) < cfg.offset_min_frames:
            est.reason = "clear; within the measure's resolution, left as is"
        else:
            est.applied = True
            est.reason = "clear; corrected"


def shift_audio(audio: np.ndarray, frames: int, samples_per_frame: float) -> np.ndarray:
    """Undo an offset of `frames` (audio late if > 0): out[t] = audio[t + offset], zero-filled, same length."""
    k = int(round(frames * samples_per_frame))
    if k == 0:
        return audio
    out = np.zeros_like(audio)
    if k > 0:
        out[: len(audio) - k] = audio[k:]
    else:
        out[-k:] = audio[: len(audio) + k]
    return out
