"""Test videos built frame by frame with PyAV (a public-domain portrait swaying on a canvas, syllable-rate noise for
speech), shared by the prepare, re-voice and enrolment tests."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import matplotlib.image
import numpy as np
from skimage import data as skdata


def write_test_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: float = 25.0,
    times: list[float] | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    channels: int = 1,
    rotation: int = 0,
    gop: int | None = None,
    vcodec: str = "libx264",
    acodec: str = "aac",
) -> Path:
    """Any of the odd videos users have, written frame by frame with PyAV: VFR timestamps, display rotation, a
    keyframe interval, stereo / 8-48 kHz audio, other codecs."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if gop is not None:
            vs.codec_context.gop_size = gop
        if times is not None:
            vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            vs.set_display_rotation(rotation)
        astream = None
        if audio is not None:
            astream = c.add_stream(acodec, rate=audio_rate)
            astream.layout = "stereo" if channels == 2 else "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if times is not None:
                vf.pts, vf.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if astream is not None:
            pcm = np.repeat(audio[None], channels, 0).T.reshape(1, -1) if channels == 2 else audio[None]
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm, np.float32), format="flt", layout=astream.layout.name
            )
            af.sample_rate, af.pts, af.time_base = audio_rate, 0, Fraction(1, audio_rate)
            for p in astream.encode(af):
                c.mux(p)
            for p in astream.encode(None):
                c.mux(p)
    return path


def portrait(which: str = "astronaut") -> np.ndarray:
    """A square head-and-shoulders cut of a public-domain portrait (the face fills about 40 % of it)."""
    if which == "astronaut":
        return np.ascontiguousarray(skdata.astronaut()[5:265, 95:355])
    img = np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg")))
    return np.ascontiguousarray(img[33:433, 64:464, :3])


def face_frames(
    n: int, size: tuple[int, int] = (320, 240), which: str = "astronaut", face_px: int = 200, fps: float = 25.0
) -> list[np.ndarray]:
    """n RGB frames (w, h = size) with the portrait gently swaying (+-4 px, +-3 % scale) on a grey canvas."""
    w, h = size
    img = portrait(which)
    out = []
    for i in range(n):
        t = i / fps
        s = face_px / img.shape[0] * (1 + 0.03 * math.sin(2 * math.pi * 0.4 * t))
        m = np.array(
            [
                [s, 0, (w - img.shape[1] * s) / 2 + 4 * math.sin(2 * math.pi * 0.3 * t)],
                [0, s, (h - img.shape[0] * s) / 2 + 3 * math.cos(2 * math.pi * 0.5 * t)],
            ]
        )
        out.append(cv2.warpAffine(img, m, (w, h), borderValue=(128, 128, 128)))
    return out


def speechy(seconds: float, rate: int, pause: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """Syllable-rate (4 Hz) bursts of band-limited noise with an optional silent pause (start, end seconds)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    sig = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same") * env * 0.3
    if pause is not None:
        sig[(t >= pause[0]) & (t < pause[1])] = 0
    return sig.astype(np.float32)


def talking_video(path: Path, seconds: float = 3.0, **kw) -> Path:
    rate = kw.pop("audio_rate", 16000)
    fr = face_frames(int(seconds * 25), kw.pop("size", (320, 240)), kw.pop("which", "astronaut"))
    return write_test_video(path, fr, audio=speechy(seconds, rate, kw.pop("pause", None)), audio_rate=rate, **kw)
