"""Video and audio container I/O with PyAV (FFmpeg): H.264 + AAC MP4 out, any common container in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from apb2face.errors import UserError
from apb2face.io import atomic_path


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float  # average frame rate reported by the container
    num_frames: int  # as reported by the container (0 when unknown)
    duration: float  # seconds
    has_audio: bool
    rotation: int  # degrees of the display matrix (portrait phone clips)


def probe(path: str | Path) -> VideoInfo:
    """Facts about a video file; raises UserError naming the file if it cannot be read or has no video stream."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError("no video stream", path)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 25
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration
                else (container.duration / 1e6 if container.duration else 0.0)
            )
            rotation = 0
            try:
                rotation = int(getattr(stream.codec_context, "rotation", 0) or 0)
            except (AttributeError, TypeError, ValueError):
                rotation = 0
            return VideoInfo(
                stream.codec_context.width,
                stream.codec_context.height,
                float(rate),
                stream.frames or 0,
                duration,
                bool(container.streams.audio),
                rotation,
            )
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot read video ({_reason(exc)})", path) from None


def iter_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """Decode (timestamp in seconds, RGB uint8 frame) pairs; display rotation is applied (portrait clips)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError("no video stream", path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time or 0.0)
                yield t, _rotate(frame.to_ndarray(format="rgb24"), getattr(frame, "rotation", 0) or 0)
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode video ({_reason(exc)})", path) from None


class ConstantRateFrames:
    """RGB uint8 frames of a video's first stream at a constant `fps`, whatever the source rate (VFR included).

    Output frame k shows the last source frame whose timestamp lies before (k + 0.5) / fps, as `resample_timestamps`
    does, but streaming: dropped source frames are never converted to RGB. Display rotation is applied. A decoding
    error after the first frame ends the stream instead of failing (a truncated file keeps what decodes); `error`
    then holds the reason. Iterate once.
    """

    def __init__(self, path: str | Path, fps: float, *, threads: int = 0) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.threads = threads  # 0 = FFmpeg's choice
        self.source_frames = 0
        self.frames = 0
        self.error: str | None = None
        self.irregular = False  # frame intervals varied by more than 10 %: the source is variable frame rate
        self.first_pts = 0.0  # seconds, timestamp of the first decoded frame (aligns a separate audio stream)
        self.rotation = 0  # display rotation of the first frame, degrees counter-clockwise (applied to the output)

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise UserError(f"cannot read video ({_reason(exc)})", self.path) from None
        with container:
            if not container.streams.video:
                raise UserError("no video stream", self.path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.thread_count = self.threads
            yield from self._resample(container, stream)

    def _resample(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[np.ndarray]:
        period = 1.0 / self.fps
        prev = None
        prev_rel = 0.0
        t0: float | None = None
        nominal = float(1 / stream.average_rate) if stream.average_rate else None
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                if prev is None:
                    raise UserError(f"cannot decode video ({_reason(exc)})", self.path) from None
                self.error = f"decoding stopped after {self.source_frames} frames ({_reason(exc)})"
                break
            if frame.pts is not None:
                t = float(frame.pts * stream.time_base)
            else:
                t = (t0 or 0.0) + prev_rel + (nominal or period)
            if t0 is None:
                t0 = t
                self.first_pts = t
                self.rotation = int(round(getattr(frame, "rotation", 0) or 0))
            rel = max(t - t0, prev_rel)  # broken (non-increasing) timestamps: hold time still
            if prev is not None and nominal and abs((rel - prev_rel) - nominal) > 0.1 * nominal:
                self.irregular = True
            while prev is not None and (self.frames + 0.5) * period <= rel + 1e-9:
                yield self._rgb(prev)
            prev, prev_rel = frame, rel
            self.source_frames += 1
        if prev is None:
            if self.error is None:
                raise UserError("video stream has no frames", self.path)
            return
        n_out = int(np.floor(prev_rel * self.fps + 1e-6)) + 1
        while self.frames < n_out:
            yield self._rgb(prev)

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        self.frames += 1
        return frame_to_rgb(frame)


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded video frame as upright RGB uint8 (display rotation applied)."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        # OpenCV's SIMD conversion is ~4x faster than swscale's rgb24 at 720p (same BT.601 limited-range maths)
        rgb = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    return _rotate(rgb, getattr(frame, "rotation", 0) or 0)


def rgb_to_yuv420p(image: np.ndarray) -> av.VideoFrame:
    """An RGB uint8 (H, W, 3) image of even size as a yuv420p frame, the inverse of `frame_to_rgb` (OpenCV, BT.601
    limited range as swscale's). OpenCV takes each 2x2 block's chroma from its top-left pixel where swscale filters:
    exact for a decoded frame (`frame_to_rgb` repeats each block's chroma; converted there and back, a 720p frame
    comes within 70.3 dB of its source, swscale's 69.2) and a quarter of swscale's time, but fine colour detail of
    other images aliases."""
    yuv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    # FFmpeg's display matrix rotation (av_display_rotation_get, = VideoFrame.rotation) is the counter-clockwise
    # turn that shows the frame upright (a phone portrait clip reads -90: turn clockwise), as `ffmpeg` autorotates
    k = int(round(float(degrees) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def resample_timestamps(timestamps: list[float], fps: float) -> np.ndarray:
    """For a constant output rate, the index of the source frame shown at each output tick (handles VFR input)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    ts = ts - ts[0]
    n_out = int(np.floor(ts[-1] * fps + 1e-6)) + 1
    ticks = np.arange(n_out) / fps
    idx = np.searchsorted(ts, ticks + 0.5 / fps) - 1  # last frame whose timestamp is before the tick's midpoint
    return np.clip(idx, 0, len(ts) - 1)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 20,
    preset: str = "veryfast",
) -> int:
    """Write RGB uint8 frames as H.264 (yuv420p) MP4, with optional mono float audio muxed as AAC.

    Written atomically: a failure leaves no partial file. Returns the number of frames written. The audio is pushed
    one frame's worth at a time beside its frame: encoded all at once, an hour of AAC packets would wait in the
    muxer's interleaving queue until the video caught up, and memory would grow with the duration.
    """
    with Mp4Writer(path, fps=fps, audio_rate=None if audio is None else sample_rate, crf=crf, preset=preset) as out:
        pushed = 0
        for frame in frames:
            out.write_frame(frame)
            if audio is not None:
                due = min(len(audio), round(out.frames * sample_rate / fps))
                out.write_audio(audio[pushed:due])
                pushed = max(pushed, due)
        if out.frames == 0:
            raise ValueError("no frames to write")
        if audio is not None:
            out.write_audio(audio[pushed:])
    return out.frames


class Mp4Writer:
    """H.264 (yuv420p) + optional AAC MP4 written incrementally: frames and audio chunks are encoded as they are
    pushed, so an hour-long stream needs no more memory than a minute.

    Atomic (apb2face.io.atomic_path): the file appears under its name only when the block ends without an error;
    otherwise the temporary file is removed. Timestamps are counts (frame index, samples received), never wall time
    or accumulated float durations. The video size is taken from `size` (height, width) or from the first frame
    (odd sizes are cropped by one pixel, as yuv420p needs); audio pushed before the first frame is held until then.
    `sampled_chroma`: frames that are mostly decoded video (`frame_to_rgb`, a re-voice) are converted to yuv420p by
    `rgb_to_yuv420p` (faster, and exact for those pixels) instead of swscale's filtered conversion.
    """

    AUDIO_RATE = 48000  # AAC at 48 kHz: any input rate is resampled to it

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float = 25.0,
        audio_rate: int | None = None,
        size: tuple[int, int] | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        sampled_chroma: bool = False,
    ) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.audio_rate = audio_rate
        self.crf, self.preset = crf, preset
        self.sampled_chroma = sampled_chroma  # frames are decoded video (`frame_to_rgb`): see `rgb_to_yuv420p`
        self.frames = 0
        self.audio_samples = 0  # input samples pushed (at audio_rate)
        self._size = size
        self._stack: contextlib.ExitStack | None = None
        self._container: av.container.OutputContainer | None = None
        self._vstream: av.video.stream.VideoStream | None = None
        self._astream: av.audio.stream.AudioStream | None = None
        self._resampler: av.AudioResampler | None = None
        self._early_audio: list[np.ndarray] = []

    def __enter__(self) -> Mp4Writer:
        self._stack = contextlib.ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_path(self.path, clean_stale=True))
            self._container = self._stack.enter_context(av.open(str(tmp), mode="w", format="mp4"))
            if self._size is not None:
                self._add_streams(*self._size)
        except (av.error.FFmpegError, OSError) as exc:
            # e.g. a folder that passes the permission check but takes no new files (/proc): say so before any work
            self._stack.close()
            raise UserError(f"cannot create the output ({_reason(exc)})", self.path) from None
        except BaseException:
            self._stack.close()
            raise
        return self

    def write_frame(self, image: np.ndarray) -> None:
        """One RGB uint8 (H, W, 3) frame; its timestamp is its index / fps."""
        if self._vstream is None:
            self._add_streams(image.shape[0], image.shape[1])
        stream = self._vstream
        if image.shape[0] < stream.height or image.shape[1] < stream.width:
            raise ValueError(f"frame {image.shape} is smaller than the stream's {stream.height}x{stream.width}")
        image = image[: stream.height, : stream.width]
        if self.sampled_chroma:
            vf = rgb_to_yuv420p(image)
        else:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vf.pts = self.frames
        self._mux(stream.encode(vf))
        self.frames += 1

    def write_audio(self, pcm: np.ndarray) -> None:
        """Mono samples at `audio_rate`: float in [-1, 1] or int16."""
        if self.audio_rate is None:
            raise ValueError("this writer was opened without audio (audio_rate=None)")
        pcm = _float_pcm(pcm)
        if pcm.size == 0:
            return
        if self._astream is None:
            self._early_audio.append(pcm)
            return
        self._encode_audio(pcm)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        assert self._stack is not None
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:
                self._stack.__exit__(type(error), error, error.__traceback__)  # discards the partial file
                raise
        return bool(self._stack.__exit__(exc_type, exc, tb))

    # -- internals --------------------------------------------------------------------------------------------------

    def _add_streams(self, height: int, width: int) -> None:
        container = self._container
        vstream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        vstream.width, vstream.height = width - width % 2, height - height % 2
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": str(self.crf), "preset": self.preset}
        self._vstream = vstream
        if self.audio_rate is not None:
            self._astream = container.add_stream("aac", rate=self.AUDIO_RATE)
            self._astream.layout = "mono"
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=self.AUDIO_RATE)
            early, self._early_audio = self._early_audio, []
            for pcm in early:
                self._encode_audio(pcm)

    def _encode_audio(self, pcm: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.audio_rate
        # every chunk is timestamped by the samples before it: with no pts the resampler's flushed tail carries one
        # while the body has none, and for some lengths (e.g. 57014 samples at 16 kHz) the muxer rejects the mix
        frame.pts = self.audio_samples
        frame.time_base = Fraction(1, self.audio_rate)
        for out in self._resampler.resample(frame):
            self._mux(self._astream.encode(out))
        self.audio_samples += pcm.size

    def _finish(self) -> None:
        if self._vstream is None:
            raise UserError("no frames to write", self.path)
        if self._astream is not None:
            for out in self._resampler.resample(None):
                self._mux(self._astream.encode(out))
            self._mux(self._astream.encode(None))
        self._mux(self._vstream.encode(None))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)


def _float_pcm(pcm: np.ndarray) -> np.ndarray:
    """Mono float32 samples in [-1, 1] from float or int16 input."""
    pcm = np.asarray(pcm).reshape(-1)
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind != "f":
        raise ValueError(f"audio must be float or int16 mono samples, got {pcm.dtype}")
    return np.ascontiguousarray(pcm, dtype=np.float32)


def _reason(exc: BaseException) -> str:
    # FFmpeg and OS errors stringify as "[Errno N] message: 'path'"; the message alone reads better after the path
    strerror = getattr(exc, "strerror", None) if isinstance(exc, (av.error.FFmpegError, OSError)) else None
    text = str(strerror or exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:200]
