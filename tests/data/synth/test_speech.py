"""espeak-ng speech through ctypes: real audio, phoneme onsets, determinism regardless of what was spoken before and
of when (the breath noise of some voice variants follows the seed, not the clock)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from apb2face.data.synth.speech import synthesize
from apb2face.errors import UserError


def test_speech_has_audio_and_ordered_phonemes() -> None:
    s = synthesize("Hello world, this is a test.", voice="en-us+f2", pitch=60, rate=160)
    assert s.sample_rate == 16000 and s.audio.dtype == np.float32
    assert 1.0 < s.duration < 4.0
    assert 0.5 < np.abs(s.audio).max() <= 0.91
    times = [t for t, _ in s.phonemes]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= s.duration + 0.05
    ipa = "".join(p for _, p in s.phonemes)
    assert "h" in ipa and "w" in ipa and "s" in ipa  # IPA symbols, not mnemonics
    assert len([p for _, p in s.phonemes if p]) >= 15


def test_speech_is_deterministic_and_history_free() -> None:
    a = synthesize("The quick brown fox.", voice="en-us+m3", pitch=40, rate=150)
    synthesize("Something else entirely, to disturb any state.", voice="en+f1", pitch=70, rate=180)
    b = synthesize("The quick brown fox.", voice="en-us+m3", pitch=40, rate=150)
    assert a.audio.tobytes() == b.audio.tobytes() and a.phonemes == b.phonemes


BREATHY_VOICES = ("en-us+f2", "en-gb-x-rp+f3", "en-029+f5")  # variants with `breath` noise (voices/!v/f2, f3, f5)


def test_breath_noise_follows_the_seed_not_the_clock() -> None:
    text = "Breathe in, then out."
    first = {v: synthesize(text, voice=v, seed=3).audio.tobytes() for v in BREATHY_VOICES}
    time.sleep(1.05)  # espeak-ng seeds its noise with time(NULL): in a new second it differs unless reseeded
    again = {v: synthesize(text, voice=v, seed=3).audio.tobytes() for v in BREATHY_VOICES}
    for voice in BREATHY_VOICES:
        assert again[voice] == first[voice], voice
        assert synthesize(text, voice=voice, seed=4).audio.tobytes() != first[voice], voice  # the seed reaches it
    plain = synthesize(text, voice="en-us+m1", seed=3)  # no breath: the seed changes nothing
    assert synthesize(text, voice="en-us+m1", seed=4).audio.tobytes() == plain.audio.tobytes()


def test_voice_pitch_and_rate_change_the_speech() -> None:
    base = synthesize("One two three four five.", voice="en-us", pitch=50, rate=160)
    slow = synthesize("One two three four five.", voice="en-us", pitch=50, rate=110)
    assert slow.duration > 1.2 * base.duration
    high = synthesize("One two three four five.", voice="en-us", pitch=90, rate=160)
    assert high.audio.tobytes() != base.audio.tobytes()


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown espeak-ng voice"):
        synthesize("hi", voice="xx-nonexistent")
    with pytest.raises(UserError, match="empty"):
        synthesize("   ")
