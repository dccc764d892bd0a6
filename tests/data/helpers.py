"""Test videos built frame by frame with PyAV, shared by the prepare and re-voice tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


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
