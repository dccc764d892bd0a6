"""A scene streamed live: one audio stream per speaker in, full scene frames out (every face pasted back, the faces
with no speaker listening), in order, each with its exact index and timestamp.

    session = SceneStreamingSession(pipe, "two_people.png", ["id00", "id03"])
    for name, chunk in arriving():             # each speaker's PCM as it comes, in any interleaving
        for frame in session.push(name, chunk):
            show(frame.image, at=frame.timestamp)
    for frame in session.finish():             # every stream padded with silence to the longest
        ...

Each rendered face of the scene (`SceneStreamingSession.faces` with an identity) is one `StreamingSession`: its
speaker's stream drives it, or silence (a listener: idle motion, closed mouth, blinks); its pose and blinks are
the scene's (`SceneFaceMotion`: the tracked face's in a video played forward and backward, natural motion per
face in a still), and its crops are pasted with the scene's paste-back (`revoice.paste_face`).

Lockstep: the faces advance together. A speaker's audio waits (as PCM) until every stream has reached it; then
every face's session gets exactly that many samples, so all of them have the same frames ready and scene frame n
comes out once every speaker's audio covers frame n plus the look-ahead (`lookahead_s`, as a single stream). A
stream that lags holds the scene back; a live source whose speaker is silent calls `fill()` (the lagging streams
are padded with silence up to the furthest one), or sends silence. `finish()` pads every stream that ended early
with silence to the longest (logged once, naming them) and renders the rest; the scene then has as many frames as
the longest stream. The frames equal `generate_scene`'s for the same scene and tracks (padded the same way) with
`render.batch_size=1`, bit for bit and for any chunking and interleaving (tests/inference/scene/test_streaming.py);
the offline default of 16 frames per model call differs from them by float rounding only (at most 1 grey level
in the crop, as for one face).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.inference.compose import ColourMatcher, Pasted
from apb2face.inference.motion import Motion, NaturalMotion
from apb2face.inference.pipeline import APB2FacePipeline, check_fps
from apb2face.inference.revoice import StageTimer, paste_face, pingpong
from apb2face.inference.scene.render import (
    SceneConfig,
    SceneFace,
    cast_faces,
    face_motion,
    scene_frames,
    scene_ticks,
    still_motion,
)
from apb2face.inference.scene.speakers import check_names
from apb2face.inference.scene.tracking import SceneTrack, track_scene
from apb2face.inference.streaming import StreamFrame, StreamingSession, as_float_pcm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneFrame:
    index: int
    timestamp: float  # seconds from the first sample: index / fps
    image: np.ndarray  # (H, W, 3) uint8 RGB: the scene's frame with every rendered face pasted
    source: int  # the scene's frame it shows (0 for a still)
    faces: tuple[StreamFrame, ...]  # each rendered face's own frame (crop, landmarks, pose, eyes), in face order
    pasted: tuple[Pasted | None, ...]  # where each was pasted; None where that face is not in this source frame

    @property
    def repeated(self) -> bool:
        """Real-time mode under overload: no face was rendered afresh (each shows its previous crop)."""
        return all(face.repeated for face in self.faces)


class SceneFaceMotion:
    """Pose and eyes of one face of a scene, frame after frame: the tracked face's own in a video (played forward
    and backward as the offline scene plays it), natural motion of its own in a still (`render.face_motion`)."""

    def __init__(self, track: SceneTrack, index: int, config: SceneConfig) -> None:
        self.track = track
        self.index = index
        self.config = config
        self._ticks = scene_ticks(track)
        self._natural: NaturalMotion | None = still_motion(track, index, config) if track.still else None
        self._frame = 0

    def take(self, count: int) -> Motion:
        if self._natural is not None:
            return self._natural.take(count)
        source = self._ticks[pingpong(len(self._ticks), count, self._frame)]
        self._frame += count
        pose, eyes = face_motion(self.track, self.index, source, self.config)
        return Motion(pose=pose, eyes=eyes)


class PcmQueue:
    """One speaker's audio not yet given to the faces (a first-in first-out of chunks, no copies until taken)."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.received = 0  # samples pushed so far (padding included)
        self.queued = 0  # of those, not yet taken

    def append(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self._chunks.append(pcm)
            self.received += len(pcm)
            self.queued += len(pcm)

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples (there must be that many)."""
        assert count <= self.queued
        parts = []
        while count > 0:
            chunk = self._chunks[0]
            if len(chunk) <= count:
                parts.append(self._chunks.popleft())
            else:
                parts.append(chunk[:count])
                self._chunks[0] = chunk[count:]
            count -= len(parts[-1])
            self.queued -= len(parts[-1])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class SceneStreamingSession:
    """Several people in one scene, each driven by their own live audio stream. Not thread-safe: push from one
    thread. Use it as a context manager (or call finish()/close()) so a video scene's decoder is closed."""

    def __init__(
        self,
        pipeline: APB2FacePipeline,
        scene: str | Path | SceneTrack,
        speakers: Sequence[str],
        config: SceneConfig | None = None,
        *,
        sample_rate: int = A.SAMPLE_RATE,
        realtime: bool = False,
        max_lag_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """scene: a still image or a video (its path), or a scene already tracked (`track_scene`, `track_image`).
        speakers: the names of the streams, each a checkpoint identity who is a face of the scene (matched as
        `config.assign` says, as `generate_scene` matches them). sample_rate, realtime, max_lag_s and clock: as
        `StreamingSession`'s, for every stream."""
        self.config = config or SceneConfig()
        self.names = tuple(speakers)
        if not self.names:
            raise UserError("a scene stream needs at least one speaker")
        check_names(list(self.names))
        if isinstance(scene, SceneTrack):
            self.track = scene
        else:
            self.track = track_scene(scene, self.config, crop_scale=pipeline.crop_scale)
        check_fps(self.track.fps)
        self.fps = self.track.fps
        self.sample_rate = int(sample_rate)
        self.faces: list[SceneFace] = cast_faces(pipeline, self.track, self.names, self.config.assign)
        self.rendered = [face for face in self.faces if face.identity is not None]
        self.sessions = [
            StreamingSession(
                pipeline,
                face.identity,
                fps=self.fps,
                sample_rate=self.sample_rate,
                realtime=realtime,
                max_lag_s=max_lag_s,
                clock=clock,
                motion=SceneFaceMotion(self.track, face.index, self.config),
            )
            for face in self.rendered
            if face.identity is not None
        ]
        self._colours = [ColourMatcher(self.config.render.compose) for _ in self.rendered]
        self._queues = {name: PcmQueue() for name in self.names}
        self._ticks = scene_ticks(self.track)
        self._stack = contextlib.ExitStack()
        self._frame_at = self._stack.enter_context(scene_frames(self.track, self.config.render, StageTimer()))
        self.fed = 0  # samples (at sample_rate) every face has been given: the slowest stream's length
        self.next_frame = 0
        self.finished = False
        for face in self.rendered:
            log.info(
                "face %d: %s, %s",
                face.index,
                face.identity,
                f"speaks as {face.speaker}" if face.speaker else "listens",
            )

    # -- facts ------------------------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the scene's frames."""
        return self.track.shape

    @property
    def lookahead_s(self) -> float:
        """Audio needed after a frame's time, in every stream, before the frame can be rendered."""
        return self.sessions[0].lookahead_s

    @property
    def received(self) -> dict[str, int]:
        """Samples (at sample_rate) each stream has brought so far, silence padding included."""
        return {name: queue.received for name, queue in self._queues.items()}

    @property
    def repeated_frames(self) -> int:
        """Real-time mode: face frames shown again instead of rendered, all faces together."""
        return sum(session.repeated_frames for session in self.sessions)

    # -- input ------------------------------------------------------------------------------------------------------

    def push(self, name: str, pcm: np.ndarray, arrived: float | None = None) -> list[SceneFrame]:
        """Add mono PCM (float in [-1, 1], or int16) of speaker `name` at the session's sample rate; returns the
        scene frames now ready (none while another stream lags behind). arrived: as `StreamingSession.push`."""
        if self.finished:
            raise RuntimeError("push() after finish()")
        queue = self._queue(name)
        queue.append(as_float_pcm(pcm).copy())  # kept until every stream has caught up: not the caller's buffer
        return self._advance(arrived)

    def fill(self, names: Sequence[str] | None = None, arrived: float | None = None) -> list[SceneFrame]:
        """Pad the streams `names` (default: all) with silence up to the furthest stream: a live speaker who is
        silent and sends nothing. Returns the scene frames now ready."""
        if self.finished:
            raise RuntimeError("fill() after finish()")
        furthest = max(queue.received for queue in self._queues.values())
        for name in self.names if names is None else names:
            queue = self._queue(name)
            queue.append(np.zeros(furthest - queue.received, np.float32))
        return self._advance(arrived)

    def finish(self, num_frames: int | None = None) -> list[SceneFrame]:
        """End of every stream: streams that ended early are padded with silence to the longest, and the remaining
        frames rendered. num_frames: total frames (default: the longest stream's length in frames, as offline)."""
        if self.finished:
            return []
        lengths = self.received
        longest = max(lengths.values())
        short = [f"{name} {n / self.sample_rate:.2f} s" for name, n in lengths.items() if n < longest]
        if short:
            seconds = longest / self.sample_rate
            log.info("streams ended early (%s): padded with silence to %.2f s", ", ".join(short), seconds)
        out = self.fill()
        total = A.num_video_frames(longest, self.fps, self.sample_rate) if num_frames is None else num_frames
        out += self._compose([session.finish(total) for session in self.sessions])
        self.finished = True
        self.close()
        return out

    def close(self) -> None:
        """Release the scene's decoder (a video scene); frames already returned stay valid."""
        self._stack.close()

    def __enter__(self) -> SceneStreamingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------------

    def _queue(self, name: str) -> PcmQueue:
        queue = self._queues.get(name) if isinstance(name, str) else None
        if queue is None:
            raise UserError(f"unknown speaker {str(name)[:40]!r} (speakers of this scene: {', '.join(self.names)})")
        return queue

    def _advance(self, arrived: float | None) -> list[SceneFrame]:
        """Give every face the audio all streams now cover; the scene frames that makes ready."""
        count = min(queue.received for queue in self._queues.values()) - self.fed
        if count <= 0:
            return []
        self.fed += count
        taken = {name: queue.take(count) for name, queue in self._queues.items()}
        silence = np.zeros(count, np.float32)
        ready = [
            session.push(silence if face.speaker is None else taken[face.speaker], arrived)
            for face, session in zip(self.rendered, self.sessions)
        ]
        return self._compose(ready)

    def _compose(self, ready: list[list[StreamFrame]]) -> list[SceneFrame]:
        """Scene frames from the faces' frames (the same indices in every face: they got the same audio)."""
        counts = {len(frames) for frames in ready}
        assert len(counts) == 1, f"faces out of step: {counts}"
        out = []
        compose = self.config.render.compose
        for faces in zip(*ready):
            k = faces[0].index
            assert k == self.next_frame and all(f.index == k for f in faces)
            s = int(self._ticks[pingpong(len(self._ticks), 1, k)[0]])
            image = self._frame_at(s).copy()
            pasted = tuple(
                paste_face(image, frame.image, self.track.faces[face.index], s, compose, colour)
                for face, frame, colour in zip(self.rendered, faces, self._colours)
            )
            out.append(SceneFrame(k, k / self.fps, image, s, tuple(faces), pasted))
            self.next_frame += 1
        return out
