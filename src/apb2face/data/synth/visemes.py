"""Mouth motion from speech: per-frame jaw opening and lip rounding from espeak-ng's phoneme onsets.

Each phoneme (IPA, stress and length marks removed) has a viseme target: how far the jaw opens (canonical units) and
how much the lips round (+1 rounded/protruded ... -1 spread). Bilabials close the lips; pauses rest the mouth.
"""

from __future__ import annotations

import numpy as np

JAW_SCALE = 0.7  # viseme openings (canonical units) -> jaw drop; wide vowels open the lips to ~0.3 of the mouth width

_VOWELS_OPEN = {
    "a": 0.30,
    "ɑ": 0.30,
    "æ": 0.27,
    "aɪ": 0.28,
    "aʊ": 0.28,
    "ʌ": 0.22,
    "ɐ": 0.2,
    "ɒ": 0.26,
    "ɔ": 0.24,
    "ɔɪ": 0.22,
    "ɛ": 0.2,
    "e": 0.18,
    "eɪ": 0.18,
    "ə": 0.14,
    "ɚ": 0.14,
    "ɜ": 0.16,
    "ɪ": 0.12,
    "i": 0.10,
    "oʊ": 0.2,
    "o": 0.2,
    "əʊ": 0.18,
    "ʊ": 0.1,
    "u": 0.08,
    "ɪə": 0.14,
    "eə": 0.18,
    "ʊə": 0.12,
    "aɪə": 0.26,
    "aɪɚ": 0.26,
    "ɑɹ": 0.26,
    "ɔɹ": 0.22,
    "ɛɹ": 0.2,
    "ɪɹ": 0.12,
    "ʊɹ": 0.12,
    "i:": 0.1,
}
_ROUND = {
    "oʊ": 0.6,
    "o": 0.6,
    "əʊ": 0.5,
    "ɔ": 0.5,
    "ɔɪ": 0.4,
    "ɒ": 0.3,
    "ʊ": 0.8,
    "u": 1.0,
    "w": 1.0,
    "ʃ": 0.5,
    "ʒ": 0.5,
    "tʃ": 0.5,
    "dʒ": 0.5,
    "ɹ": 0.3,
    "aʊ": 0.2,
    "ʊə": 0.6,
    "ʊɹ": 0.6,
    "i": -0.8,
    "ɪ": -0.5,
    "eɪ": -0.5,
    "e": -0.5,
    "ɛ": -0.4,
    "æ": -0.3,
    "s": -0.4,
    "z": -0.4,
    "j": -0.4,
}
_CONSONANT_OPEN = {
    "p": 0.0,
    "b": 0.0,
    "m": 0.0,
    "f": 0.03,
    "v": 0.03,
    "θ": 0.06,
    "ð": 0.06,
    "t": 0.06,
    "d": 0.06,
    "n": 0.06,
    "l": 0.08,
    "ɾ": 0.06,
    "s": 0.04,
    "z": 0.04,
    "ʃ": 0.06,
    "ʒ": 0.06,
    "tʃ": 0.06,
    "dʒ": 0.06,
    "k": 0.08,
    "ɡ": 0.08,
    "g": 0.08,
    "ŋ": 0.08,
    "h": 0.12,
    "ɹ": 0.08,
    "j": 0.06,
    "w": 0.04,
    "ʔ": 0.05,
    "x": 0.08,
}
_BILABIAL = {"p", "b", "m"}


def strip_marks(ipa: str) -> str:
    """An IPA phoneme without stress, length and syllable marks (the viseme tables' keys)."""
    return ipa.replace("ˈ", "").replace("ˌ", "").replace("ː", "").replace("-", "").strip()


def viseme_tracks(
    phonemes: list[tuple[float, str]], duration: float, fps: float, num_frames: int, articulation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame jaw opening and lip rounding from phoneme onsets, with coarticulation.

    Targets are step functions on a 200 Hz grid (each phoneme holds its target until the next onset; silence = 0),
    smoothed with a Gaussian (neighbouring phonemes blend) and led by 30 ms (the mouth moves before the sound).
    Bilabials (p, b, m) close the lips through a narrower kernel so closures survive the smoothing.
    """
    rate = 200
    n = int(np.ceil(duration * rate)) + 1
    jaw = np.zeros(n)
    rnd = np.zeros(n)
    closure = np.zeros(n)
    events = sorted(phonemes)
    for k, (t, ipa) in enumerate(events):
        t_end = events[k + 1][0] if k + 1 < len(events) else min(duration, t + 0.12)
        a, b = int(round(t * rate)), int(round(t_end * rate))
        p = strip_marks(ipa)
        if not p:
            continue  # pause
        open_ = _VOWELS_OPEN.get(p)
        if open_ is None:
            open_ = _CONSONANT_OPEN.get(p, _CONSONANT_OPEN.get(p[:1], 0.08))
            if p[:1] in _VOWELS_OPEN or p[:2] in _VOWELS_OPEN:  # diphthongs / r-coloured vowels we did not list
                open_ = _VOWELS_OPEN.get(p[:2], _VOWELS_OPEN.get(p[:1]))
        jaw[a:b] = JAW_SCALE * open_ * articulation
        rnd[a:b] = _ROUND.get(p, _ROUND.get(p[:2], 0.0))
        if p in _BILABIAL:
            closure[a:b] = 1.0
    jaw = gaussian_smooth(jaw, 0.035 * rate)
    rnd = gaussian_smooth(rnd, 0.05 * rate)
    closure = gaussian_smooth(closure, 0.015 * rate)
    jaw = jaw * (1 - np.clip(closure * 1.3, 0, 1))
    lead = 0.03
    t_frames = np.arange(num_frames) / fps + lead
    grid = np.arange(n) / rate
    return (np.interp(t_frames, grid, jaw).astype(np.float32), np.interp(t_frames, grid, rnd).astype(np.float32))


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """`x` convolved with a Gaussian of `sigma` samples, edges extended (same length as `x`)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid")
