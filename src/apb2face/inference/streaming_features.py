"""Incremental audio features: the same (T, 60) rows as `apb2face.data.audio.audio_features`, computed as PCM arrives.

Row t of the offline features depends on audio up to a bounded horizon, so it can be finalised early:

* MFCC row t covers samples [160 t - 200, 160 t + 200) (centred 25 ms window, zero padding at the start);
* its delta needs MFCC rows t±2, the delta-delta needs delta rows t±2, so row t is final once MFCC row t + 4 exists,
  i.e. after 160 (t + 4) + 200 samples (52.5 ms after the row's centre);
* at the end of the stream the remaining rows use the offline edge rules (zero-padded audio, edge-repeated rows).

Every state buffer is a fixed-size window over the stream, so memory stays flat however long it runs.
"""

from __future__ import annotations

import numpy as np
from python_speech_features import base as psf

from apb2face.data import audio as A
from apb2face.data.loudness import LevelTracker, Loudness

PREEMPH = 0.97
HALF_WIN = A.WIN // 2
# MFCC rows that must follow a row before its delta-delta is final (two delta stages of +-DELTA_N rows)
ROW_HORIZON = 2 * A.DELTA_N
_BLOCK_SAMPLES = 16 * A.HOP  # at most 16 new MFCC rows per step
_WINDOW_ROWS = 64  # >= block rows + context of both delta stages


def samples_for_row(row: int) -> int:
    """Number of input samples after which feature row `row` is final (mid-stream)."""
    return (row + ROW_HORIZON) * A.HOP + HALF_WIN


class RowWindow:
    """The most recent `capacity` rows of an unbounded sequence, addressed by absolute row index."""

    def __init__(self, capacity: int, width: int, dtype: np.dtype = np.float32) -> None:
        self.capacity = capacity
        self._rows = np.zeros((capacity, width), dtype=dtype)
        self.count = 0  # rows appended so far (absolute index of the next row)

    @property
    def first(self) -> int:
        """Absolute index of the oldest row still held."""
        return max(0, self.count - self.capacity)

    def extend(self, rows: np.ndarray) -> None:
        if len(rows) > self.capacity:
            raise ValueError(f"{len(rows)} rows exceed the window of {self.capacity}")
        for row in rows:
            self._rows[self.count % self.capacity] = row
            self.count += 1

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at absolute `indices` (each must lie in [first, count))."""
        indices = np.asarray(indices)
        if indices.size and (indices.min() < self.first or indices.max() >= self.count):
            raise IndexError(
                f"rows {indices.min()}..{indices.max()} outside held range {self.first}..{self.count - 1}"
            )
        return self._rows[indices % self.capacity]


class StreamingFeatures:
    """Push mono float PCM at 16 kHz; get back the final feature rows as soon as they are determined.

    `push(pcm)` returns the newly final rows (k, 60); `finish()` returns the rest, after which the rows emitted in
    total equal `audio_features(all_pcm, loudness=loudness)` (to float rounding of the batched FFT/GEMM). With
    `loudness="relative"` every emitted row goes through one `LevelTracker` in stream order, so the rows are the same
    whatever sizes the PCM arrives in.
    """

    def __init__(self, loudness: Loudness = "absolute") -> None:
        self._level = LevelTracker() if loudness == "relative" else None
        self.num_samples = 0
        self.finished = False
        self._raw_last = 0.0  # last raw (zero-padded) sample, for the pre-emphasis filter
        self._pre = np.zeros(0, np.float64)  # pre-emphasised padded signal from padded index self._pre_start
        self._pre_start = 0
        self._mfcc = RowWindow(_WINDOW_ROWS, A.NUM_CEPS)
        self._delta = RowWindow(_WINDOW_ROWS, A.NUM_CEPS)
        self._num_delta = 0
        self._num_out = 0
        self._append_padded(np.zeros(HALF_WIN))  # the offline pipeline zero-pads the start by half a window

    @property
    def rows_emitted(self) -> int:
        return self._num_out

    def push(self, pcm: np.ndarray) -> np.ndarray:
        if self.finished:
            raise RuntimeError("push() after finish()")
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if pcm.size == 0:
            return np.zeros((0, A.NUM_FEATURES), np.float32)
        out = []
        # bounded blocks keep every state window small whatever the caller's chunk size
        for lo in range(0, pcm.size, _BLOCK_SAMPLES):
            block = pcm[lo : lo + _BLOCK_SAMPLES]
            self.num_samples += block.size
            self._append_padded(block.astype(np.float64))
            out.append(self._advance(final=False))
        return np.concatenate(out) if len(out) > 1 else out[0]

    def finish(self) -> np.ndarray:
        """Flush: the rows that depend on the end of the stream."""
        if self.finished:
            return np.zeros((0, A.NUM_FEATURES), np.float32)
        self.finished = True
        self._append_padded(np.zeros(HALF_WIN))
        return self._advance(final=True)

    @property
    def total_rows(self) -> int | None:
        """Rows the stream has in total (known only after finish())."""
        return self.num_samples // A.HOP + 1 if self.finished else None

    # -- internals -------------------------------------------------------------------------------------------------

    def _append_padded(self, x: np.ndarray) -> None:
        prev = np.concatenate(([self._raw_last], x[:-1]))
        # same arithmetic as python_speech_features.sigproc.preemphasis on the whole padded signal
        self._pre = np.concatenate((self._pre, x - PREEMPH * prev))
        self._raw_last = float(x[-1])

    def _advance(self, final: bool) -> np.ndarray:
        self._compute_mfcc(final)
        self._compute_deltas(final)
        return self._compute_output(final)

    def _compute_mfcc(self, final: bool) -> None:
        start = self._mfcc.count
        available = (self._pre_start + len(self._pre) - A.WIN) // A.HOP + 1  # rows whose window is complete
        stop = self.num_samples // A.HOP + 1 if final else available
        if stop <= start:
            return
        lo = start * A.HOP - self._pre_start
        segment = self._pre[lo : (stop - 1) * A.HOP + A.WIN - self._pre_start]
        self._mfcc.extend(_mfcc_of_emphasised(segment)[: stop - start].astype(np.float32))
        drop = stop * A.HOP - self._pre_start  # samples no later row needs
        self._pre = self._pre[drop:]
        self._pre_start += drop

    def _compute_deltas(self, final: bool) -> None:
        n = A.DELTA_N
        # delta rows need MFCC rows +-n (edge-repeated at both ends of the stream)
        stop = self._mfcc.count if final else max(0, self._mfcc.count - n)
        if stop > self._num_delta:
            self._delta.extend(_deltas(self._mfcc, self._num_delta, stop, self._mfcc.count, final))
            self._num_delta = stop

    def _compute_output(self, final: bool) -> np.ndarray:
        n = A.DELTA_N
        stop = self._num_delta if final else max(0, self._num_delta - n)
        start = self._num_out
        if stop <= start:
            return np.zeros((0, A.NUM_FEATURES), np.float32)
        idx = np.arange(start, stop)
        out = np.concatenate(
            [self._mfcc.take(idx), self._delta.take(idx), _deltas(self._delta, start, stop, self._num_delta, final)],
            axis=1,
        )
        self._num_out = stop
        return out.astype(np.float32) if self._level is None else self._level(out)


_FILTERBANK = psf.get_filterbanks(A.NUM_MELS, A.NFFT, A.SAMPLE_RATE, 0, A.SAMPLE_RATE / 2)


def _mfcc_of_emphasised(signal: np.ndarray) -> np.ndarray:
    """python_speech_features.mfcc(signal, preemph=0, ...) with the parameters of apb2face.data.audio.mfcc, step for
    step (so the rows are bit-identical), minus the filterbank rebuilt on every call (half the cost at 20 ms chunks).
    The signal is already pre-emphasised; the offline path filters the whole padded signal with the same
    arithmetic (StreamingFeatures._append_padded)."""
    frames = psf.sigproc.framesig(signal, A.WIN, A.HOP, np.hamming)
    pspec = psf.sigproc.powspec(frames, A.NFFT)
    energy = np.sum(pspec, 1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = np.dot(pspec, _FILTERBANK.T)
    feat = np.where(feat == 0, np.finfo(float).eps, feat)
    feat = psf.dct(np.log(feat), type=2, axis=1, norm="ortho")[:, : A.NUM_CEPS]
    feat = psf.lifter(feat, 22)
    feat[:, 0] = np.log(energy)
    return feat


def _deltas(src: RowWindow, start: int, stop: int, known: int, final: bool) -> np.ndarray:
    """Temporal deltas of rows [start, stop) of `src` (rows [0, known) exist), computed exactly like
    `apb2face.data.audio.temporal_deltas` on the whole sequence: the context rows are gathered with the same edge
    clipping (at row 0 always, at the end only when the stream is final) and differentiated in one call."""
    n = A.DELTA_N
    rows = np.arange(start - n, stop + n)
    upper = known - 1
    if not final and rows.max() > upper:
        raise RuntimeError("delta requested before its context rows exist")
    context = src.take(np.clip(rows, 0, upper))
    return A.temporal_deltas(context, n)[n : n + (stop - start)]
