"""Loudness normalisation of the audio features: c0 (log frame energy) relative to the speaker's recent level.

Of the 60 feature columns only c0 depends on the recording level (the cepstra c1-c19 are log-spectrum *shapes*, and
the deltas of c0 are differences, so a gain cancels in both). A fuser fed raw c0 must learn every level it may meet;
users record from -60 to 0 dBFS. `LevelTracker` replaces c0 with c0 minus a causal estimate of the speech level, so a
loud vowel reads about 0 at any gain and pauses read well below it:

    peak_t   = max(c0_t, peak_{t-1} - RELEASE_PER_ROW)
               (a peak meter: syllable peaks every ~0.2 s keep it at the voice's loud level, and it falls by
               3 dB a second in a pause, so a short pause does not pull the level down to the room noise)
    level_t  = max(peak_t, min(c0 over the last NOISE_ROWS rows) + NOISE_MARGIN, FLOOR)
               (the sliding minimum follows the noise floor: in a long silence with a noisy room the level stays
               15 dB above that noise, so the noise reads -15 dB, never "as loud as speech"; FLOOR keeps digital
               silence and very quiet rooms below any speech)
    c0'_t    = c0_t - level_t

It is causal and row by row: row t depends only on rows <= t, so a stream (rows arriving in blocks of any size) and
an offline track (all rows at once) get bit-identical values from the same arithmetic; the state is two floats and a
fixed window of NOISE_ROWS values, so memory stays flat however long a stream runs.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np

Loudness = Literal["absolute", "relative"]  # how the fuser reads c0: as recorded, or through a LevelTracker

# c0 = ln(energy of a 25 ms frame): +10 dB of gain adds ln(10) = 2.303 to it; white noise at -60 dBFS RMS reads
# about -8.8 (measured with apb2face.data.audio.audio_features)
NATS_PER_DB = float(np.log(10.0)) / 10.0
FLOOR = -8.8  # about -60 dBFS: quieter than any speech users record, louder than digital silence (-36)
RELEASE_PER_ROW = 3.0 * NATS_PER_DB / 100.0  # 3 dB per second at 100 rows per second
NOISE_ROWS = 150  # 1.5 s: longer than a syllable, shorter than a pause in conversation
NOISE_MARGIN = 15.0 * NATS_PER_DB


class LevelTracker:
    """Feed feature rows (k, 60) in stream order; get them back with c0 made relative to the speech level."""

    def __init__(self) -> None:
        self.peak = FLOOR
        self._recent: deque[float] = deque(maxlen=NOISE_ROWS)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        out = np.array(rows, dtype=np.float32, copy=True)
        for i, c0 in enumerate(out[:, 0].astype(np.float64).tolist()):
            self.peak = max(c0, self.peak - RELEASE_PER_ROW)
            self._recent.append(c0)
            level = max(self.peak, min(self._recent) + NOISE_MARGIN, FLOOR)
            out[i, 0] = c0 - level
        return out


def relative_loudness(features: np.ndarray) -> np.ndarray:
    """A whole track's (T, 60) features with c0 relative to the speech level (a fresh `LevelTracker` from row 0)."""
    return LevelTracker()(features)
