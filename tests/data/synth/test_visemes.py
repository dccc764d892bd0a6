"""Mouth motion from phonemes: lips close for bilabials and pauses, open for open vowels, round for rounded ones."""

from __future__ import annotations

import numpy as np

from apb2face.data import synth


def test_visemes_close_lips_for_bilabials_and_pauses() -> None:
    phonemes = [(0.3, "m"), (0.45, "ˈɑː"), (0.75, "p"), (0.85, "ə"), (1.0, "")]
    jaw, rnd = synth.viseme_tracks(phonemes, 1.6, 100.0, 160)
    assert jaw[:20].max() < 0.01 and jaw[140:].max() < 0.01  # before and after speech
    assert jaw[55:70].max() > 0.2  # "ɑ" opens wide
    assert jaw[78] < 0.3 * jaw[60]  # "p" closes the lips
    assert np.abs(np.diff(jaw)).max() < 0.4 * jaw.max()  # coarticulated: no steps (10 ms samples)
    _, rnd_u = synth.viseme_tracks([(0.1, "u"), (0.5, "")], 0.8, 100.0, 80)
    assert rnd_u[20:40].mean() > 0.5 and rnd[55:70].mean() < 0.3
