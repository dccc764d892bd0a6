"""Audio decoding refuses what would be unbounded work: implausible sample rates and audio past the length limit."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import audio as A
from apb2face.errors import UserError


def wav_with_header_rate(path: Path, rate: int, num_bytes: int = 16000) -> Path:
    """A small 16-bit mono WAV whose header claims `rate` Hz (the samples are noise)."""
    samples = np.random.default_rng(0).integers(-3000, 3000, num_bytes // 2, dtype=np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_a_16_kb_wav_claiming_1_hz_is_refused_before_decoding(tmp_path):
    path = wav_with_header_rate(tmp_path / "one_hz.wav", 1)
    with pytest.raises(UserError, match="sample rate 1 Hz is outside 4000-384000 Hz") as err:
        A.load_audio(path, 48000)  # would be 8,000 s resampled to 384 M samples
    assert str(path) in str(err.value)


def test_rates_at_the_bounds_are_accepted_and_beyond_refused(tmp_path):
    for rate in (A.MIN_SAMPLE_RATE, 16000, A.MAX_SAMPLE_RATE):
        assert A.load_audio(wav_with_header_rate(tmp_path / f"{rate}.wav", rate), 16000).size > 0
    with pytest.raises(UserError, match="sample rate"):
        A.load_audio(wav_with_header_rate(tmp_path / "fast.wav", 2 * A.MAX_SAMPLE_RATE), 16000)
    with pytest.raises(UserError, match="sample rate 3999 Hz"):
        A.check_sample_rate(A.MIN_SAMPLE_RATE - 1, "x.wav")


def test_decoding_stops_at_the_length_limit_and_says_how_to_raise_it(tmp_path):
    path = wav_with_header_rate(tmp_path / "three_s.wav", 16000, num_bytes=3 * 16000 * 2)
    assert len(A.load_audio(path, 16000, max_seconds=3.5)) == 3 * 16000
    with pytest.raises(UserError, match="longer than 2 s.*--max-seconds") as err:
        A.load_audio(path, 16000, max_seconds=2)
    assert str(path) in str(err.value)
