"""Full frames live: a `StreamingSession` over an avatar loop (`inference.avatar`), each frame's face pasted into the
loop's frame as it comes out (`StreamFrame.full_frame`).

    avatar = load_avatar(pipe, "id01", RevoiceConfig())
    session = AvatarSession(pipe, avatar)
    for chunk in microphone():
        for frame in session.push(chunk):
            show(frame.full_frame, at=frame.timestamp)
    session.finish()

The crop stream is the plain session's, driven by the loop's own head pose and blinks (`LoopMotion`: the clip played
forward and backward, as `revoice` plays it), at the clip's frame rate; the paste is `revoice.paste_face` with one
colour matcher carried from frame to frame, as offline. So the full frames equal the offline ones
(`APB2FacePipeline(..., full_frame=True)`, `batch_size=1`) for any chunking of the audio, and the latency is the
crop stream's plus one paste per frame (`blend_seconds`). A frame the real-time mode repeats under overload repeats
the last full frame too (no paste).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from apb2face.data import audio as A
from apb2face.inference.avatar import Avatar
from apb2face.inference.compose import ColourMatcher, ComposeConfig
from apb2face.inference.motion import Motion
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.revoice import FaceTrack, FrameReader, cache_frames, paste_face, pingpong
from apb2face.inference.streaming import StreamFrame, StreamingSession

PRELOAD_MEGABYTES = 512  # a loop up to this size is decoded once up front (no decoding while streaming)


class LoopMotion:
    """The avatar clip's pose and blinks for output frames 0, 1, 2, ... in order (`take`), the clip playing forward
    and backward; `source(n)` is the clip frame output frame n shows."""

    def __init__(self, track: FaceTrack) -> None:
        self.track = track
        self.ticks = track.ticks()
        self._frame = 0

    def source(self, index: int) -> int:
        return int(self.ticks[pingpong(len(self.ticks), 1, index)[0]])

    def take(self, count: int) -> Motion:
        rows = self.ticks[pingpong(len(self.ticks), count, self._frame)]
        self._frame += count
        return Motion(pose=self.track.pose[rows], eyes=self.track.eyes[rows])


class LoopFrames:
    """The clip's decoded frames by index: all of them decoded once when they fit in PRELOAD_MEGABYTES (as MuseTalk
    prepares an avatar), otherwise read as they are needed (`FrameReader`: short backward chunks)."""

    def __init__(self, avatar: Avatar, cache_megabytes: int = 256) -> None:
        track = avatar.track
        self._reader = FrameReader(avatar.video, track.pts, cache_frames(track.shape, cache_megabytes)).__enter__()
        self._frames: list[np.ndarray] | None = None
        if len(track) * track.shape[0] * track.shape[1] * 3 <= PRELOAD_MEGABYTES * 2**20:
            self._frames = [self._reader[i].copy() for i in range(len(track))]
            self.close()

    def __getitem__(self, index: int) -> np.ndarray:
        return self._frames[index] if self._frames is not None else self._reader[index]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.__exit__(None, None, None)
            self._reader = None


class AvatarSession:
    """A live audio stream rendered over an avatar loop: `push` and `finish` return `StreamFrame`s whose `full_frame`
    is set. Not thread-safe: push from one thread."""

    def __init__(
        self,
        pipeline: APB2FacePipeline,
        avatar: Avatar,
        *,
        compose: ComposeConfig | None = None,
        sample_rate: int = A.SAMPLE_RATE,
        realtime: bool = False,
        max_lag_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        cache_megabytes: int = 256,
    ) -> None:
        """The session options are `StreamingSession`'s; the frame rate is the clip's, the motion the clip's own."""
        self.avatar = avatar
        self.motion = LoopMotion(avatar.track)
        self.session = StreamingSession(
            pipeline,
            avatar.name,
            fps=avatar.track.fps,
            sample_rate=sample_rate,
            realtime=realtime,
            max_lag_s=max_lag_s,
            clock=clock,
            motion=self.motion,
        )
        self.compose = compose or ComposeConfig()
        self.colour = ColourMatcher(self.compose)
        self.frames = LoopFrames(avatar, cache_megabytes)
        self.blend_seconds = 0.0  # wall time spent pasting, over `blended` frames
        self.blended = 0
        self._last: np.ndarray | None = None

    # -- the session's facts ------------------------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        return self.session.fps

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the full frames."""
        return self.avatar.track.shape

    @property
    def samples(self) -> int:
        return self.session.samples

    @property
    def lookahead_s(self) -> float:
        return self.session.lookahead_s

    @property
    def next_frame(self) -> int:
        return self.session.next_frame

    @property
    def finished(self) -> bool:
        return self.session.finished

    @property
    def realtime(self) -> bool:
        return self.session.realtime

    @property
    def repeated_frames(self) -> int:
        return self.session.repeated_frames

    @property
    def overloads(self) -> int:
        return self.session.overloads

    # -- input --------------------------------------------------------------------------------------------------------

    def push(self, pcm: np.ndarray, arrived: float | None = None) -> list[StreamFrame]:
        """`StreamingSession.push`, each frame with its full frame."""
        return [self._full(frame) for frame in self.session.push(pcm, arrived)]

    def finish(self, num_frames: int | None = None) -> list[StreamFrame]:
        """`StreamingSession.finish`, each frame with its full frame; the clip is closed."""
        frames = [self._full(frame) for frame in self.session.finish(num_frames)]
        self.frames.close()
        return frames

    def stream(self, chunks: Iterable[np.ndarray], num_frames: int | None = None) -> Iterator[StreamFrame]:
        """All frames for an iterable of PCM chunks (finish() included)."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.finish(num_frames)

    def _full(self, frame: StreamFrame) -> StreamFrame:
        if frame.repeated and self._last is not None:
            return dataclasses.replace(frame, full_frame=self._last)
        started = time.perf_counter()
        s = self.motion.source(frame.index)
        full = self.frames[s].copy()
        paste_face(full, frame.image, self.avatar.track, s, self.compose, self.colour)
        self.blend_seconds += time.perf_counter() - started
        self.blended += 1
        self._last = full
        return dataclasses.replace(frame, full_frame=full)
