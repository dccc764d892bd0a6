"""Speech degradations: each effect does what it claims, and a chain is a pure function of its generator."""

from __future__ import annotations

import numpy as np
from scipy import signal

from apb2face.data.audio import SAMPLE_RATE
from apb2face.data.audio_augment import (
    active_rms,
    change_voice,
    colour,
    degrade,
    mu_law,
    noise,
    reverberate,
    telephone_band,
    warp_voice,
)


def _speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 1200, 5000), 1))
    return (0.2 * voiced * (np.sin(2 * np.pi * 3 * t) > 0) + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    freqs, power = signal.welch(x, fs=SAMPLE_RATE, nperseg=1024)
    return float(power[(freqs >= lo) & (freqs < hi)].sum())


def test_telephone_band_removes_what_a_phone_line_cannot_carry():
    x = _speech_like()
    y = telephone_band(x)
    assert _band_energy(y, 4500, 8000) < 1e-3 * _band_energy(x, 4500, 8000)
    assert _band_energy(y, 1000, 1400) > 0.5 * _band_energy(x, 1000, 1400)


def test_reverberation_keeps_the_level_and_smears_the_pauses():
    x = _speech_like()
    y = reverberate(x, 0.6, np.random.default_rng(0))
    assert len(y) == len(x)
    assert np.sqrt(np.mean(y**2)) == np.float64(np.sqrt(np.mean(y**2)))
    np.testing.assert_allclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(x.astype(np.float64) ** 2)), rtol=1e-6)
    # the first pause (1/6 s .. 1/3 s) is near silence dry, and carries the tail of the word before it wet
    pause = slice(int(SAMPLE_RATE / 6) + 400, int(SAMPLE_RATE / 3))
    assert np.abs(y[pause]).mean() > 5 * np.abs(x[pause]).mean()


def test_noise_kinds_are_unit_rms_and_pink_tilts_down():
    rng = np.random.default_rng(1)
    for kind in ("white", "pink", "babble"):
        n = noise(kind, 16000, rng, babble=_speech_like(3.0))
        assert abs(np.sqrt(np.mean(n**2)) - 1.0) < 1e-6, kind
    pink = noise("pink", 64000, rng)
    assert _band_energy(pink, 100, 500) > 10 * _band_energy(pink, 4000, 4400)


def test_mu_law_is_a_coarse_but_faithful_codec():
    x = _speech_like()
    y = mu_law(x)
    assert not np.array_equal(x, y)
    assert np.corrcoef(x, y)[0, 1] > 0.99


def test_degrade_is_a_pure_function_of_the_generator_and_changes_the_audio():
    x = _speech_like(2.0)
    level = active_rms(x)
    a = degrade(x, np.random.default_rng([4, 2]), level, babble=_speech_like(5.0, seed=3))
    b = degrade(x, np.random.default_rng([4, 2]), level, babble=_speech_like(5.0, seed=3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and len(a) == len(x) and np.abs(a).max() <= 1.0
    outs = [degrade(x, np.random.default_rng(seed), level) for seed in range(20)]
    gains = [np.sqrt(np.mean(o.astype(np.float64) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2)) for o in outs]
    assert min(gains) < 0.3 and max(gains) > 3.0  # the +-20 dB gain range is used


def test_active_rms_ignores_pauses():
    x = _speech_like(2.0)
    padded = np.concatenate([x, np.zeros(4 * len(x), np.float32)])
    assert abs(active_rms(padded) - active_rms(x)) / active_rms(x) < 0.35


def _peak_hz(x: np.ndarray, lo: float, hi: float) -> float:
    freqs, power = signal.welch(x, fs=SAMPLE_RATE, nperseg=2048)
    band = (freqs >= lo) & (freqs < hi)
    return float(freqs[band][np.argmax(power[band])])


def test_warp_voice_moves_the_spectrum_by_alpha_and_keeps_timing_and_level():
    x = _speech_like(2.0)
    for alpha in (0.8, 1.25):
        y = warp_voice(x, alpha)
        assert len(y) == len(x)
        assert np.isclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(x.astype(np.float64) ** 2)), rtol=1e-6)
        assert abs(_peak_hz(y, 800, 1800) - 1200 * alpha) < 40  # the 1.2 kHz partial moved to 1.2 kHz x alpha
        # the syllable rhythm stays where it was: the 3 Hz on/off envelope lines up with the original's
        env = lambda a: np.convolve(np.abs(a), np.ones(320) / 320, "same")  # noqa: E731
        assert np.corrcoef(env(x), env(y))[0, 1] > 0.9


def test_colour_changes_the_spectrum_not_the_level_and_change_voice_is_pure():
    x = _speech_like(1.0).astype(np.float64)
    y = colour(x, np.random.default_rng(3))
    assert np.isclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(x**2)))
    ratios = [_band_energy(y, lo, hi) / _band_energy(x, lo, hi) for lo, hi in ((100, 200), (250, 350), (1100, 1300))]
    assert max(ratios) / min(ratios) > 1.5  # some bands louder, some quieter
    a, b = change_voice(x, np.random.default_rng(7)), change_voice(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, change_voice(x, np.random.default_rng(8)))
