"""Voice embeddings (data/voice.py): the mel spectrogram the encoder expects, and that the shipped encoder tells two
espeak-ng voices apart while finding one voice alike across sentences."""

from __future__ import annotations

import numpy as np
import pytest

from apb2face.data import voice
from apb2face.data.audio import SAMPLE_RATE


def test_mel_filters_are_slaney_triangles_over_the_spectrum() -> None:
    filters = voice.mel_filters()
    assert filters.shape == (voice.MEL_BANDS, voice.MEL_WINDOW // 2 + 1)
    assert (filters >= 0).all() and (filters.sum(axis=1) > 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > peaks[0]  # bands rise in frequency
    bin_hz = SAMPLE_RATE / voice.MEL_WINDOW
    # Slaney's scale is linear below 1 kHz: the lowest band centres lie 200/3 Hz apart (1 kHz = mel 15)
    assert abs(peaks[1] * bin_hz - 2 * 200 / 3) <= bin_hz
    # area normalisation: a wide high band is lower than a narrow low one
    assert filters[-1].max() < filters[1].max()


def test_mel_spectrogram_of_a_tone_peaks_in_its_band() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    mel = voice.mel_spectrogram(0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert mel.shape == (SAMPLE_RATE // voice.MEL_HOP + 1, voice.MEL_BANDS)  # centred frames every 10 ms
    band = int(np.argmax(mel[50]))
    assert voice.mel_filters()[band].argmax() * SAMPLE_RATE / voice.MEL_WINDOW == pytest.approx(1000, abs=60)
    quiet = voice.mel_spectrogram(0.05 * np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert quiet[50, band] == pytest.approx(mel[50, band] / 100, rel=1e-3)  # power: 20 dB less is 1/100


def test_normalise_loudness() -> None:
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    rms = float(np.sqrt(np.mean(voice.normalise_loudness(x).astype(np.float64) ** 2)))
    assert 20 * np.log10(rms) == pytest.approx(voice.LOUDNESS_DBFS, abs=0.01)
    assert not voice.normalise_loudness(np.zeros(100, np.float32)).any()


def test_one_voice_is_alike_across_sentences_and_two_voices_are_not() -> None:
    from apb2face.data.synth.speech import synthesize

    encoder = voice.VoiceEncoder.pretrained()

    def embed(text: str, name: str, pitch: int) -> np.ndarray:
        audio = synthesize(text, voice=name, pitch=pitch).audio
        frames = int(len(audio) / SAMPLE_RATE * 25)
        per_frame = voice.voice_per_frame(audio, frames, 25.0, encoder)
        assert per_frame.shape == (frames, voice.EMBEDDING_SIZE)
        assert np.allclose(np.linalg.norm(per_frame, axis=1), 1.0, atol=1e-4)
        middle = per_frame[frames // 4 : 3 * frames // 4].mean(axis=0)
        return middle / np.linalg.norm(middle)

    first = embed("The weather will stay dry for most of the week ahead.", "en-us+m1", 40)
    again = embed("Please bring the blue folder to the meeting on Monday.", "en-us+m1", 40)
    other = embed("The weather will stay dry for most of the week ahead.", "en-gb-x-rp+f3", 80)
    assert first @ again > other @ first + 0.2, (first @ again, other @ first)
