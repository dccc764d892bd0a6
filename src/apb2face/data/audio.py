"""Audio: decode any common format to mono at one rate, MFCC features with true temporal deltas, per-frame windows.

Constants and their derivations (all rates in Hz, all times in seconds)::

    SAMPLE_RATE  = 16000          every input is resampled to this rate, mono
    HOP          = 160 samples    10 ms between feature frames  -> FEATURE_RATE = 100 feature frames / s
    WIN          = 400 samples    25 ms analysis window (Hamming), FFT 512, 40 mel bands
    NUM_CEPS     = 20             MFCC (c0 replaced by log frame energy)
    NUM_FEATURES = 60             MFCC + delta + delta-delta, deltas along TIME (upstream: across coefficients)

A video frame n at `fps` is centred at feature index round(n / fps * FEATURE_RATE). Its window holds
`window` feature frames, `lookahead` of which lie after the centre (bounded look-ahead for streaming); windows are
padded at both ends of the track by repeating the edge frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from python_speech_features import base as psf

from apb2face.data.loudness import Loudness, relative_loudness
from apb2face.errors import UserError

SAMPLE_RATE = 16000
HOP = 160
WIN = 400
NFFT = 512
NUM_MELS = 40
NUM_CEPS = 20
NUM_FEATURES = 3 * NUM_CEPS
FEATURE_RATE = SAMPLE_RATE // HOP  # 100 feature frames per second
DELTA_N = 2
# real audio lies well inside these rates; a header outside them is damaged or hostile (a 16 KB WAV that claims 1 Hz
# "lasts" 8,000 s and would be resampled to gigabytes), so it is refused before any sample is converted
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000


def check_sample_rate(rate: int, source: str | Path | None = None) -> None:
    """UserError (naming `source`) unless MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UserError(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (damaged file or not audio?)",
            source,
        )


def check_duration(num_samples: int, sample_rate: int, max_seconds: float | None, source: str | Path | None) -> None:
    """UserError when audio is longer than `max_seconds` (None: no limit); the message says how to raise it."""
    if max_seconds is not None and num_samples > max_seconds * sample_rate:
        raise UserError(
            f"audio is longer than {max_seconds:g} s, the limit for one job (raise it with --max-seconds, "
            "or max_seconds= in Python)",
            source,
        )


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Decode the first audio stream of any file FFmpeg reads (wav, mp3, m4a, flac, ogg, mp4, ...) to mono float32 in
    [-1, 1] at `sample_rate`. Raises UserError naming the file when it has no audio or no samples, when its sample
    rate is implausible (`check_sample_rate`, before decoding) or when it runs longer than `max_seconds` (decoding
    stops there, so a huge file costs no more than the limit)."""
    return decode_audio(path, sample_rate, max_seconds, mono=True)[0]


def load_channels(path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """`load_audio` keeping the channels apart: (channels, samples) float32 (a file with one voice per channel)."""
    return decode_audio(path, sample_rate, max_seconds, mono=False)


def decode_audio(path: str | Path, sample_rate: int, max_seconds: float | None, mono: bool) -> np.ndarray:
    """(channels, samples) float32 at `sample_rate` of the first audio stream (one channel when `mono`: downmixed);
    the checks of `load_audio`."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError("no audio stream (not an audio file?)", path)
            stream = container.streams.audio[0]
            if stream.rate:  # some containers leave the header rate unset; every decoded frame is checked below
                check_sample_rate(stream.rate, path)
            channels = 1 if mono else stream.codec_context.channels
            layout = "mono" if mono else stream.codec_context.layout.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
            chunks, total = [], 0
            for frame in container.decode(stream):
                check_sample_rate(frame.sample_rate, path)
                frame.pts = None  # let the resampler count samples itself (VFR/odd timestamps)
                converted = [f.to_ndarray().reshape(channels, -1) for f in resampler.resample(frame)]
                chunks += converted
                total += sum(c.shape[1] for c in converted)
                check_duration(total, sample_rate, max_seconds, path)
            chunks += [f.to_ndarray().reshape(channels, -1) for f in resampler.resample(None)]
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode audio ({str(exc).splitlines()[0][:160]})", path) from None
    audio = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((channels, 0), np.float32)
    if audio.shape[1] == 0:
        raise UserError("audio has no samples", path)
    return audio


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample mono float audio (soxr, high quality)."""
    if rate_in == rate_out:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio.astype(np.float32), rate_in, rate_out).astype(np.float32)


def mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(T, NUM_CEPS) MFCC frames every HOP samples; T = len(audio) // HOP + 1 (frames centred on hop multiples)."""
    if sample_rate != SAMPLE_RATE:
        audio = resample(audio, sample_rate)
    # centre frames on multiples of HOP (like librosa center=True) so feature t sits at t * 10 ms
    padded = np.pad(audio.astype(np.float64), (WIN // 2, WIN // 2))
    n_frames = len(audio) // HOP + 1
    padded = np.pad(padded, (0, max(0, (n_frames - 1) * HOP + WIN - len(padded))))
    feats = psf.mfcc(
        padded,
        samplerate=SAMPLE_RATE,
        winlen=WIN / SAMPLE_RATE,
        winstep=HOP / SAMPLE_RATE,
        numcep=NUM_CEPS,
        nfilt=NUM_MELS,
        nfft=NFFT,
        preemph=0.97,
        ceplifter=22,
        appendEnergy=True,
        winfunc=np.hamming,
    )
    return feats[:n_frames].astype(np.float32)


def temporal_deltas(feats: np.ndarray, n: int = DELTA_N) -> np.ndarray:
    """Regression deltas along time (axis 0) with edge padding: d_t = sum_k k (c_{t+k} - c_{t-k}) / (2 sum_k k^2)."""
    padded = np.pad(feats, ((n, n), (0, 0)), mode="edge")
    denom = 2 * sum(k * k for k in range(1, n + 1))
    t = len(feats)
    return sum(k * (padded[n + k : n + k + t] - padded[n - k : n - k + t]) for k in range(1, n + 1)) / denom


def audio_features(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, loudness: Loudness = "absolute") -> np.ndarray:
    """(T, 60) float32: MFCC, delta and delta-delta over time, one row per 10 ms; with `loudness="relative"` c0 is
    made relative to the speech level (`apb2face.data.loudness`, as the model's config says)."""
    c = mfcc(audio, sample_rate)
    d = temporal_deltas(c)
    features = np.concatenate([c, d, temporal_deltas(d)], axis=1).astype(np.float32)
    return relative_loudness(features) if loudness == "relative" else features


def frame_centre(frame_index: np.ndarray | int, fps: float) -> np.ndarray:
    """Feature index at the time of video frame(s) `frame_index`."""
    return np.rint(np.asarray(frame_index, dtype=np.float64) / fps * FEATURE_RATE).astype(np.int64)


def frame_windows(
    features: np.ndarray, frame_indices: np.ndarray, fps: float, window: int = 64, lookahead: int = 32
) -> np.ndarray:
    """(len(frame_indices), window, NUM_FEATURES) windows; rows [c - (window - lookahead), c + lookahead)."""
    centres = frame_centre(frame_indices, fps)
    rows = centres[:, None] + np.arange(-(window - lookahead), lookahead)[None, :]
    return features[np.clip(rows, 0, len(features) - 1)]


def num_video_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames needed to cover the audio: ceil(duration * fps) (video length = audio length within one frame)."""
    return max(1, int(np.ceil(num_samples / sample_rate * fps - 1e-6)))


def rms_per_frame(audio: np.ndarray, num_frames: int, fps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS energy of the audio inside each video frame's 1/fps slot (num_frames,)."""
    edges = np.rint(np.arange(num_frames + 1) / fps * sample_rate).astype(np.int64)
    out = np.zeros(num_frames, dtype=np.float32)
    for i in range(num_frames):
        seg = audio[edges[i] : edges[i + 1]]
        out[i] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0
    return out
