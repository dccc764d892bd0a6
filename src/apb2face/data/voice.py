"""Whose voice: Resemblyzer's speaker encoder (256-d voice embeddings), one per video frame.

The encoder (a 3-layer LSTM trained with the GE2E loss on thousands of speakers) and its weights ship as
`pretrained.pt` in the `resemblyzer` PyPI package (Apache-2.0), so nothing is downloaded at run time. The package
is installed without its dependencies (librosa, webrtcvad) and never imported: its mel spectrogram is computed here
the way librosa computes it for the encoder (25 ms Hann windows every 10 ms, 40 Slaney mel bands, power), and the
network is defined here with the package's layer names so its state dict loads as is.

Two windows of one voice have embeddings at cosine similarity about 0.8 on average, two different voices about
0.5 (`benchmarks/active_speaker.py`'s interviews): the active-speaker detection of `prepare --people` uses this to
tell the voices of a conversation apart before it asks which face each voice belongs to.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apb2face.data.audio import SAMPLE_RATE

MEL_WINDOW = 400  # samples (25 ms at 16 kHz)
MEL_HOP = 160  # samples (10 ms)
MEL_BANDS = 40
PARTIAL_FRAMES = 160  # mel frames the encoder sees at once (1.6 s), as it was trained
EMBEDDING_SIZE = 256
LOUDNESS_DBFS = -30.0  # the encoder was trained on speech normalised to this RMS level
WEIGHTS = "pretrained.pt"


def weights_path() -> Path:
    """The encoder's weights file inside the `resemblyzer` package, found without importing it (its __init__ needs
    librosa, which is not installed)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the resemblyzer package is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), (200.0 / 3) * mel)


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = MEL_WINDOW, bands: int = MEL_BANDS) -> np.ndarray:
    """(bands, n_fft // 2 + 1) triangular Slaney-normalised mel filters from 0 Hz to Nyquist (librosa.filters.mel's
    defaults)."""
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), bands + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return weights.astype(np.float32)


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """(frames, MEL_BANDS) mel power spectrogram of 16 kHz mono audio, one frame every 10 ms, centred windows with
    zero padding (librosa.feature.melspectrogram as the encoder was trained with)."""
    padded = np.pad(np.asarray(samples, np.float32), (MEL_WINDOW // 2, MEL_WINDOW // 2))
    count = 1 + max(0, len(padded) - MEL_WINDOW) // MEL_HOP
    index = np.arange(MEL_WINDOW)[None, :] + MEL_HOP * np.arange(count)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_WINDOW) / MEL_WINDOW)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[index] * window.astype(np.float32), axis=1)) ** 2
    return (power @ mel_filters().T).astype(np.float32)


def normalise_loudness(samples: np.ndarray, dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """`samples` scaled so that their RMS is `dbfs` (silence stays silence)."""
    samples = np.asarray(samples, np.float32)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
    return samples if rms <= 1e-9 else samples * np.float32(10 ** (dbfs / 20) / rms)


class VoiceEncoder(nn.Module):
    """mel frames (batch, PARTIAL_FRAMES, MEL_BANDS) -> L2-normalised voice embeddings (batch, EMBEDDING_SIZE)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_BANDS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_SIZE)

    @classmethod
    def pretrained(cls) -> VoiceEncoder:
        """The encoder with the weights shipped in the `resemblyzer` package, in eval mode."""
        encoder = cls()
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
        for training_only in ("similarity_weight", "similarity_bias"):  # the GE2E loss's scale, not the encoder's
            state.pop(training_only, None)
        encoder.load_state_dict(state)
        return encoder.eval()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embedding = torch.relu(self.linear(hidden[-1]))
        return embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)


def voice_per_frame(
    samples: np.ndarray, num_frames: int, fps: float, encoder: VoiceEncoder, step_frames: int = 2, batch: int = 128
) -> np.ndarray:
    """(num_frames, EMBEDDING_SIZE) the voice around each video frame: the embedding of the 1.6 s of audio centred
    on it, computed every `step_frames` video frames (a frame takes the nearest one)."""
    mels = mel_spectrogram(normalise_loudness(samples))
    half = PARTIAL_FRAMES // 2
    mels = np.pad(mels, ((half, half), (0, 0)))  # a window centred on the first or last frame reads silence
    centres = np.arange(0, max(num_frames, 1), step_frames)
    mel_at = np.clip(np.round(centres / fps * SAMPLE_RATE / MEL_HOP).astype(int), 0, len(mels) - PARTIAL_FRAMES)
    windows = torch.from_numpy(np.stack([mels[m : m + PARTIAL_FRAMES] for m in mel_at]))
    with torch.no_grad():
        embeddings = torch.cat([encoder(chunk) for chunk in windows.split(batch)]).numpy()
    nearest = np.minimum((np.arange(num_frames) + step_frames // 2) // step_frames, len(centres) - 1)
    return embeddings[nearest]
