"""Relative loudness: c0 read against a causal speech level is the same at any recording gain, stays low in pauses and
in long noisy silences, and does not depend on how the rows are split into blocks."""

from __future__ import annotations

import numpy as np
import pytest

from apb2face.data import audio as A
from apb2face.data.loudness import FLOOR, NATS_PER_DB, NOISE_MARGIN, LevelTracker, relative_loudness
from apb2face.models.config import ModelConfig
from tests.inference.helpers import noise_speech


def at_gain(pcm: np.ndarray, db: float) -> np.ndarray:
    return (pcm * 10 ** (db / 20)).astype(np.float32)


@pytest.mark.parametrize("db", [-30.0, -12.0, 12.0])
def test_relative_c0_is_the_same_at_any_gain(db):
    pcm = noise_speech(4.0, seed=3) + at_gain(np.random.default_rng(0).standard_normal(64000), -75)
    base = A.audio_features(pcm, loudness="relative")
    shifted = A.audio_features(at_gain(pcm, db), loudness="relative")
    # absolute c0 moves by the gain, relative c0 does not
    raw_shift = A.audio_features(at_gain(pcm, db))[:, 0] - A.audio_features(pcm)[:, 0]
    assert np.median(raw_shift) == pytest.approx(db * NATS_PER_DB, abs=0.01)
    # frames above the floor at both gains, once the level has met the first syllable
    speech = np.minimum(A.audio_features(pcm)[:, 0], A.audio_features(at_gain(pcm, db))[:, 0]) > FLOOR + 1.0
    speech[:40] = False
    assert speech.sum() > 50
    np.testing.assert_allclose(shifted[speech, 0], base[speech, 0], atol=1e-3)
    np.testing.assert_array_equal(shifted[:, 1:], A.audio_features(at_gain(pcm, db))[:, 1:])  # only c0 changes


def test_syllable_peaks_read_about_zero_and_pauses_well_below():
    pcm = noise_speech(4.0, seed=1)
    c0 = A.audio_features(at_gain(pcm, -35), loudness="relative")[50:, 0]
    assert c0.max() <= 0.0
    assert np.quantile(c0, 0.95) > -1.0  # loud frames near the level, at -35 dB of gain as at full scale
    assert np.quantile(c0, 0.2) < -5.0  # the gaps between syllables read > 20 dB below it


def test_a_long_noisy_silence_never_reads_as_loud_as_speech():
    rng = np.random.default_rng(0)
    speech = noise_speech(2.0, seed=2)
    room = at_gain(rng.standard_normal(8 * A.SAMPLE_RATE), -45)  # 8 s of room noise at -45 dBFS, no speech
    c0 = A.audio_features(np.concatenate([speech, room]), loudness="relative")[:, 0]
    tail = c0[-300:]  # the last 3 s: the peak meter has fallen to the noise, the noise rule holds the level above it
    assert tail.max() < -NOISE_MARGIN + 1.5
    assert np.median(tail) == pytest.approx(-NOISE_MARGIN, abs=1.0)


def test_rows_in_blocks_of_any_size_give_the_same_values():
    features = A.audio_features(noise_speech(3.0, seed=4))
    whole = relative_loudness(features)
    for block in (1, 7, 64, 1000):
        tracker = LevelTracker()
        parts = [tracker(features[i : i + block]) for i in range(0, len(features), block)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert relative_loudness(features[:0]).shape == (0, 60)


def test_the_model_config_names_the_loudness_and_refuses_others():
    assert ModelConfig().audio_loudness == "absolute"
    assert ModelConfig(audio_loudness="relative").audio_loudness == "relative"
    with pytest.raises(ValueError, match="audio_loudness"):
        ModelConfig(audio_loudness="loud")
