"""Speech degradations for training: what users' recordings do to clean speech.

The built-in data is clean synthetic speech at one level. Users drive the model with phone calls, laptop
microphones across a room, quiet and loud recordings and lossy codecs. `degrade` applies a random chain of those
effects (each with its own probability) so the fuser learns features that survive them:

    reverberation   synthetic room impulse response, RT60 0.15-0.8 s (far-field microphones)
    telephone band  300-3400 Hz band-pass (calls; nothing above 4 kHz)
    noise           white, pink or babble (other training speech) at 0-30 dB SNR
    gain            -20..+20 dB, clipped at full scale like a recorder
    G.711 mu-law    8-bit companding (the telephone codec)

and, before those, `change_voice` gives the synthetic voices other speakers' spectra (the built-in voices are six
espeak-ng variants): the spectrum stretched along frequency (vocal tract length, 0.8-1.25) and a random microphone
colour (tilt and two peaking filters).

Every draw comes from the caller's numpy Generator, so a training sample's degradation is a pure function of its
seed and a resumed run sees the same audio.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from apb2face.data.audio import SAMPLE_RATE

NOISE_KINDS = ("white", "pink", "babble")


def reverberate(
    audio: np.ndarray, rt60: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (direct path first), keeping the RMS."""
    n = max(1, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    response = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3  # -60 dB at rt60
    response[0] = 1.0
    wet = signal.fftconvolve(audio, response)[: len(audio)]
    return _match_rms(wet, audio)


def telephone_band(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """300-3400 Hz band-pass, the narrow-band telephone channel."""
    sos = signal.butter(6, (300, 3400), btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, audio)


def noise(kind: str, length: int, rng: np.random.Generator, babble: np.ndarray | None = None) -> np.ndarray:
    """Unit-RMS noise of `kind` (see NOISE_KINDS); babble is a random stretch of `babble` speech (white without)."""
    if kind == "babble" and babble is not None and len(babble) > length:
        start = int(rng.integers(len(babble) - length))
        out = np.asarray(babble[start : start + length], dtype=np.float64)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(length))
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power
        out = np.fft.irfft(spectrum, n=length)
    else:
        out = rng.standard_normal(length)
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-8)


def mu_law(audio: np.ndarray, bits: int = 8) -> np.ndarray:
    """G.711-style mu-law companding to `bits` bits and back."""
    mu = 2**bits - 1
    x = np.clip(audio, -1.0, 1.0)
    coded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    coded = np.round((coded + 1) / 2 * mu) / mu * 2 - 1
    return np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu


def degrade(
    audio: np.ndarray,
    rng: np.random.Generator,
    speech_rms: float,
    babble: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """A random chain of the module's degradations applied to mono float audio; same length, float32.

    speech_rms: the level of the clip's speech (its active-speech RMS), so the noise SNR means the same thing in a
    pause as in a word."""
    x = np.asarray(audio, dtype=np.float64)
    if rng.random() < 0.4:
        x = reverberate(x, float(rng.uniform(0.15, 0.8)), rng, sample_rate)
    if rng.random() < 0.3:
        x = telephone_band(x, sample_rate)
    if rng.random() < 0.6:
        snr_db = float(rng.uniform(0.0, 30.0))
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        x = x + noise(kind, len(x), rng, babble) * speech_rms * 10 ** (-snr_db / 20)
    x = np.clip(x * 10 ** (float(rng.uniform(-20.0, 20.0)) / 20), -1.0, 1.0)
    if rng.random() < 0.2:
        x = mu_law(x)
    return x.astype(np.float32)


def warp_voice(audio: np.ndarray, alpha: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Another speaker's vocal tract: the short-time spectrum stretched along frequency by `alpha` (> 1: formants
    and harmonics move up, as from a shorter vocal tract; < 1: down), each bin keeping its own phase, timing
    unchanged (vocal tract length perturbation on the waveform). Same length and RMS."""
    nperseg = 512
    _, _, spec = signal.stft(audio, sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4)
    # one linear interpolation for every frame: output bin k reads input bin k / alpha (nothing beyond the top)
    source = np.arange(spec.shape[0]) / alpha
    low = np.minimum(source.astype(np.int64), spec.shape[0] - 1)
    high = np.minimum(low + 1, spec.shape[0] - 1)
    frac = (source - low)[:, None]
    magnitude = np.abs(spec)
    warped = (magnitude[low] * (1 - frac) + magnitude[high] * frac) * (source <= spec.shape[0] - 1)[:, None]
    _, out = signal.istft(
        warped * np.exp(1j * np.angle(spec)), sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4
    )
    return _match_rms(np.pad(out[: len(audio)], (0, max(0, len(audio) - len(out)))), audio)


def colour(audio: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Another microphone and mouth-to-mic path: a random spectral tilt (-6..+6 dB from 100 Hz to 8 kHz) and two
    random peaking filters (200-5000 Hz, -10..+10 dB, Q 0.7-3). Same length and RMS."""
    tilt_db = float(rng.uniform(-6.0, 6.0))
    # a first-order shelf at 1 kHz: about tilt_db between the low and high ends of the band
    b, a = signal.iirfilter(1, 1000.0, btype="highpass", fs=sample_rate, ftype="butter")
    x = audio + (10 ** (tilt_db / 20) - 1) * signal.lfilter(b, a, audio)
    for _ in range(2):
        x = signal.lfilter(
            *_peaking(
                float(rng.uniform(200, 5000)), float(rng.uniform(-10, 10)), float(rng.uniform(0.7, 3.0)), sample_rate
            ),
            x,
        )
    return _match_rms(x, audio)


def _peaking(freq: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of an RBJ audio-EQ-cookbook peaking filter."""
    amp, w0 = 10 ** (gain_db / 40), 2 * np.pi * freq / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp])
    return b / a[0], a / a[0]


def change_voice(audio: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Another voice and microphone for clean speech: `warp_voice` by 0.8-1.25 (log-uniform) and, half the time,
    `colour`. Float64, same length."""
    x = warp_voice(
        np.asarray(audio, dtype=np.float64), float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))), sample_rate
    )
    return colour(x, rng, sample_rate) if rng.random() < 0.5 else x


def active_rms(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """RMS over the 20 ms frames within 30 dB of the loud ones (95th percentile): the speech level, not diluted by
    pauses (a simple form of ITU-T P.56 active speech level)."""
    frame = sample_rate // 50
    n = len(audio) // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    energy = np.mean(np.square(audio[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return float(np.sqrt(np.mean(energy[energy >= 1e-3 * np.percentile(energy, 95)])))


def _match_rms(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return x * (np.sqrt(np.mean(like**2)) / max(float(np.sqrt(np.mean(x**2))), 1e-12))
