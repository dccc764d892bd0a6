"""Real-time generation: push PCM as it arrives (e.g. 20-40 ms chunks), get 25 fps frames with timestamps.

    pipe = APB2FacePipeline.from_pretrained(backend="onnx")  # the demo checkpoint
    session = StreamingSession(pipe, "woman1")
    for chunk in microphone():                 # float32 in [-1, 1] or int16, mono, 16 kHz
        for frame in session.push(chunk):
            show(frame.image, at=frame.timestamp)
    for frame in session.finish():
        ...

Frame n shows time n / fps. It is rendered as soon as its audio window is final: the window reaches
`audio_lookahead` feature rows past the frame (config, 120 ms by default) and each row needs 52.5 ms more audio
for its deltas (StreamingFeatures), so a frame is ready `lookahead_s` = (lookahead + 3) * 10 ms + 12.5 ms of audio
after its own time, plus compute. Everything is counted in samples and frame indices, never by accumulating
floating-point durations, so audio and video cannot drift apart however long the stream runs; every buffer is a
fixed-size window, so memory stays flat.

The frames equal the offline pipeline's (`APB2FacePipeline.__call__`) for the same audio, reference, seed and motion:
the same features (bit-exact), the same windows, the same natural-motion sequence, the same model step.

Overload (`realtime=True`, used by live sources): when rendering cannot keep up, a frame that would come out more
than `max_lag_s` after the audio that made it ready is not rendered; the last rendered frame is emitted again in its
place (`StreamFrame.repeated`), so every frame still comes out, with its exact index and timestamp, in sync with the
audio. The motion advances as if it had been rendered, so once the load goes away the frames are again the ones an
unloaded stream renders. One warning is logged per overload episode; `repeated_frames` and `overloads` count them.

Frame-parallel rendering (`workers=N`, not in real-time mode): the frames of one stream do not depend on each other
once their audio windows and motion are known, so up to N of them render at once on N threads while the caller's
thread goes on with the audio. A stream fed faster than real time (a file, a backlog) then keeps N cores busy where a
small model cannot use a second core inside one frame (its operations are too short to split). Give the backend one
intra-op thread per worker (ONNX Runtime and PyTorch release the GIL while they compute). Frames still come out in
order and are the same frames; push() returns those finished so far (up to 3 N may still be in flight, returned
by a later push() or finish()). A live source needs every frame as soon as it is ready, so `realtime=True` renders
one frame at a time in the caller's thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.inference.motion import (
    DEFAULT_SEED,
    FILE_FPS,
    Motion,
    MotionSource,
    NaturalMotion,
    fit_length,
    read_table,
)
from apb2face.inference.pipeline import APB2FacePipeline, Reference, check_fps
from apb2face.inference.streaming_features import RowWindow, samples_for_row
from apb2face.models.fuser import AUDIO_ROW_WIDTH

log = logging.getLogger(__name__)

BLOCK_SAMPLES = 640  # 40 ms: input is processed in blocks this size at most, so frames come out as early as possible
ROW_MARGIN = 64  # feature rows kept beyond one window
MAX_LAG_FRAMES = 2.0  # real-time mode: default lateness allowed beyond the unavoidable look-ahead, in frame periods
CLOCK_DRIFT = 1e-3  # the audio clock of a continuous source may run this much slower than the wall clock
COST_SMOOTHING = 0.25  # weight of the newest render time in the running estimate of the next one
FLOOR_RISE = 0.1  # seconds per second: how fast the estimate of the lateness fresh audio has anyway may creep up
# frame-parallel streams: frames queued per worker, so that no worker waits while the caller's thread computes the
# next frames' audio (`realtime` at 256 px, 2 workers: 157-175 / 172-179 / 178-182 frames/s with 1 / 2 / 3)
IN_FLIGHT_PER_WORKER = 3


@dataclass(frozen=True)
class StreamFrame:
    index: int
    timestamp: float  # seconds from the first sample: index / fps
    image: np.ndarray  # (S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (K, 2) in [0, 1]
    pose: np.ndarray  # (3,) degrees yaw, pitch, roll
    eyes: np.ndarray  # (2,) openness
    ready_sample: int  # input samples (16 kHz) received when the frame was rendered
    repeated: bool = False  # real-time mode under overload: not rendered, the previous frame's image shown again
    full_frame: np.ndarray | None = None  # (H, W, 3) uint8: the avatar loop's frame with `image` pasted in
    # (`inference.avatar_stream.AvatarSession`); None in a crop stream


class SuppliedMotion:
    """Per-frame rows given up front (files or arrays): row n drives frame n, the last row is held after the end
    (as the offline pipeline's `fit_length` does). Missing signals come from `fallback`."""

    def __init__(self, fallback: NaturalMotion, pose: np.ndarray | None, eyes: np.ndarray | None) -> None:
        self.fallback = fallback
        self.pose = pose
        self.eyes = eyes
        self._frame = 0

    def take(self, count: int) -> Motion:
        natural = self.fallback.take(count)
        idx = self._frame + np.arange(count)
        self._frame += count
        pose = natural.pose if self.pose is None else self.pose[np.minimum(idx, len(self.pose) - 1)]
        eyes = natural.eyes if self.eyes is None else self.eyes[np.minimum(idx, len(self.eyes) - 1)]
        return Motion(pose=pose.astype(np.float32), eyes=eyes.astype(np.float32))


def load_motion_rows(value: Any, columns: int, fps: float, what: str) -> np.ndarray | None:
    """A pose/eyes argument for streaming: None, a file (rows at 25 fps, resampled to `fps`), one constant row or a
    (frames, columns) array at `fps`."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        rows = read_table(value, columns, {"pose": "yaw,pitch,roll", "blink": "left,right eye openness"}[what])
        if abs(fps - FILE_FPS) > 1e-6 and len(rows) > 1:
            n = int(np.floor((len(rows) - 1) / FILE_FPS * fps + 1e-6)) + 1
            rows = fit_length(rows, n, fps, FILE_FPS, value)
        if what == "blink":  # as apb2face.inference.motion.load_blink
            rows = np.clip(rows, 0.0, 1.0)
    else:
        rows = np.asarray(value, dtype=np.float64)
        if rows.ndim == 1 and rows.shape[0] == columns:
            rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] != columns or len(rows) == 0 or not np.isfinite(rows).all():
        raise UserError(f"{what}: expected a finite array of shape (frames, {columns}), got {rows.shape}")
    return rows


class StreamingSession:
    """One reference face driven by a live audio stream. Not thread-safe: push from one thread."""

    def __init__(
        self,
        pipeline: APB2FacePipeline,
        reference: Reference,
        *,
        fps: float = 25.0,
        seed: int | None = DEFAULT_SEED,
        pose: Any = None,
        eyes: Any = None,
        sample_rate: int = A.SAMPLE_RATE,
        realtime: bool = False,
        max_lag_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        allow_unknown: bool = False,
        motion: MotionSource | None = None,
        workers: int = 1,
    ) -> None:
        """realtime: drop (repeat) frames that would come out more than `max_lag_s` (default 2 frame periods) after
        the audio that made them ready, instead of falling further behind; `clock` is the wall clock that `arrived`
        times given to push() are read on. allow_unknown: render a photo of a person the checkpoint does not know
        (see APB2FacePipeline.prepare_reference). motion: where each frame's pose and eyes come from
        instead of seed / pose / eyes (e.g. a scene face's own motion, `inference.scene.streaming`). workers: frames
        rendered at once on that many threads when not in real-time mode (module docstring)."""
        check_fps(fps)
        if workers < 1:
            raise UserError(
                f"workers must be at least 1, got {workers}"
            )  # the same bounds as generate: a huge rate would ask for gigabytes of frames
        self.pipeline = pipeline
        self.fps = float(fps)
        self.reference = pipeline.prepare_reference(reference, allow_unknown=allow_unknown)
        config = pipeline.config
        self.window = int(config.audio_window)
        self.lookahead = int(config.audio_lookahead)
        natural = NaturalMotion(self.fps, seed, centre=pipeline.sway_centre(self.reference))
        pose_rows = load_motion_rows(pose, 3, self.fps, "pose")
        eyes_rows = load_motion_rows(eyes, 2, self.fps, "blink")
        if motion is None:
            supplied = pose_rows is not None or eyes_rows is not None
            motion = SuppliedMotion(natural, pose_rows, eyes_rows) if supplied else natural
        self._motion = motion
        self._features = pipeline.streaming_features()
        # feature rows as they arrive, and the same rows encoded (pipeline.encode_audio) once a frame needs them:
        # a frame adds about four rows, encoded in one block
        self._raw = RowWindow(self.window + ROW_MARGIN, A.NUM_FEATURES)
        self._rows = RowWindow(self.window + ROW_MARGIN, AUDIO_ROW_WIDTH)
        self._resampler = None
        if sample_rate != A.SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, A.SAMPLE_RATE, 1, dtype="float32")
        self.sample_rate = int(sample_rate)
        self.next_frame = 0
        self.finished = False
        self.realtime = bool(realtime)
        self.max_lag_s = MAX_LAG_FRAMES / self.fps if max_lag_s is None else float(max_lag_s)
        if not self.max_lag_s > 0:
            raise UserError(f"max_lag_s must be positive, got {max_lag_s}")
        self.clock = clock
        self.repeated_frames = 0  # frames emitted again instead of rendered (real-time mode under overload)
        self.overloads = 0  # overload episodes: runs of repeated frames until a second of frames is rendered in time
        self._input_samples = 0  # at the session's sample rate, for the audio clock
        self._anchor: float | None = None  # wall time of the first sample, as the audio clock says
        self._arrived = 0.0  # when the audio being rendered from was available
        self._cost = 0.0  # running estimate of one frame's render time
        self._rendered = 0
        self._floor = float("inf")  # lateness of the freshest audio lately
        self._in_time = 0  # frames rendered in a row since the last repeated one
        self._overloaded = False
        self._last: StreamFrame | None = None
        self.workers = 1 if self.realtime else int(workers)
        self._pool = ThreadPoolExecutor(self.workers, "apb2face-render") if self.workers > 1 else None
        self._in_flight: deque[tuple[StreamFrame, Future]] = deque()  # frames rendering on the pool, in order

    # -- facts ------------------------------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        """16 kHz samples received so far."""
        return self._features.num_samples

    @property
    def lookahead_s(self) -> float:
        """Audio needed after a frame's time before it can be rendered (at 25 fps, frames sit on feature rows)."""
        return samples_for_row(self.lookahead - 1) / A.SAMPLE_RATE

    # -- input ------------------------------------------------------------------------------------------------------

    def push(self, pcm: np.ndarray, arrived: float | None = None) -> list[StreamFrame]:
        """Add mono PCM (float in [-1, 1], or int16) at the session's sample rate; returns the frames now ready.

        arrived (real-time mode): when the chunk's last sample was available, on `clock`. Default: the time the audio
        clock of a continuous source gives (first sample's time + samples received / rate, the first sample's time
        being the earliest that every push so far allows), so a caller that falls behind and pushes queued chunks
        late is seen to be late. A source with gaps (audio that stops and resumes) passes its arrival times (the
        time a chunk was received, not the time it is pushed)."""
        if self.finished:
            raise RuntimeError("push() after finish()")
        pcm = as_float_pcm(pcm)
        if self.realtime:
            self._arrived = self._arrival(len(pcm), arrived)
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        out: list[StreamFrame] = []
        for lo in range(0, len(pcm), BLOCK_SAMPLES):
            self._raw.extend(self._features.push(pcm[lo : lo + BLOCK_SAMPLES]))
            out += self._render_ready(final_rows=None, last_frame=None)
        return out + self._collect(wait=False)

    def finish(self, num_frames: int | None = None) -> list[StreamFrame]:
        """End of stream: the remaining frames (their windows are completed by the offline edge rules).

        num_frames: total frames of the stream (default: the audio's length in frames, as the offline pipeline)."""
        if self.finished:
            return []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            for lo in range(0, len(tail), BLOCK_SAMPLES):
                self._raw.extend(self._features.push(tail[lo : lo + BLOCK_SAMPLES]))
        self._raw.extend(self._features.finish())
        self.finished = True
        total = A.num_video_frames(self._features.num_samples, self.fps) if num_frames is None else num_frames
        out = self._render_ready(final_rows=self._features.total_rows, last_frame=total)
        out += self._collect(wait=True)
        if self._pool is not None:
            self._pool.shutdown()
        return out

    def stream(self, chunks: Iterable[np.ndarray], num_frames: int | None = None) -> Iterator[StreamFrame]:
        """All frames for an iterable of PCM chunks (finish() included)."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.finish(num_frames)

    # -- internals --------------------------------------------------------------------------------------------------

    def _render_ready(self, final_rows: int | None, last_frame: int | None) -> list[StreamFrame]:
        out = []
        while True:
            n = self.next_frame
            centre = int(A.frame_centre(n, self.fps))
            if final_rows is None:
                # the window's last row is centre + lookahead - 1; with no look-ahead the first frame still needs
                # one row (row 0, repeated before the start, as frame_windows clips)
                if self._raw.count < max(centre + self.lookahead, 1):
                    break
            elif n >= last_frame:
                break
            self._encode_rows()
            if self._pool is not None:
                out += self._submit(n, centre, final_rows)
            else:
                out.append(
                    self._render_in_time(n, centre, final_rows)
                    if self.realtime and final_rows is None  # finish() renders the few frames left, all of them
                    else self._render(n, centre, final_rows)
                )
            self.next_frame += 1
        return out

    def _arrival(self, samples: int, arrived: float | None) -> float:
        """When the end of the audio pushed so far was available. Given (`arrived`), it is taken as is, except that
        audio is not taken to arrive faster than it is spoken: a client sending a file at ten times the speed of
        speech is served at the speed of speech. Not given (a continuous source): a chunk is pushed no earlier than
        its last sample is spoken, so the earliest `push time - audio duration` bounds the first sample's time; it
        may move later by CLOCK_DRIFT per second of audio, so an audio clock slower than the wall clock is
        followed."""
        self._input_samples += samples
        audio_s = self._input_samples / self.sample_rate
        if arrived is not None:
            if self._anchor is None:
                self._anchor = arrived - audio_s
            return max(arrived, self._anchor + audio_s)
        start = self.clock() - audio_s
        if self._anchor is None or start < self._anchor:
            self._anchor = start
        else:
            self._anchor = min(start, self._anchor + CLOCK_DRIFT * samples / self.sample_rate)
        return self._anchor + audio_s

    def _encode_rows(self) -> None:
        """Encode the feature rows that arrived since the last frame (also for a frame that is repeated: the next
        windows overlap its window)."""
        if self._rows.count < self._raw.count:
            self._rows.extend(self.pipeline.encode_audio(self._raw.take(np.arange(self._rows.count, self._raw.count))))

    def _render_in_time(self, n: int, centre: int, final_rows: int | None) -> StreamFrame:
        """Render frame n, or repeat the last frame if rendering it would end more than max_lag_s after its audio
        arrived. When a render alone takes most of max_lag_s, frames whose audio is fresh (late by no more than a
        quarter of max_lag_s beyond what fresh audio is late anyway, up to max_lag_s) are still rendered, so the
        face keeps moving at whatever rate the machine allows while the latency stays bounded."""
        started = self.clock()
        lateness = started - self._arrived
        # the lateness even fresh audio has (waking up, features) on a starved machine: a minimum that creeps up
        self._floor = min(lateness, self._floor + FLOOR_RISE / self.fps)
        allowed = max(self.max_lag_s - self._cost, min(self._floor, self.max_lag_s) + self.max_lag_s / 4)
        if self._last is not None and lateness > allowed:
            self._motion.take(1)  # the motion sequence stays the unloaded one
            self.repeated_frames += 1
            self._in_time = 0
            if not self._overloaded:
                self._overloaded = True
                self.overloads += 1
                log.warning(
                    "rendering cannot keep up (frame %d is %.0f ms late, a frame takes %.0f ms): repeating frames to "
                    "stay in sync with the audio",
                    n,
                    lateness * 1000,
                    self._cost * 1000,
                )
            last = self._last
            return StreamFrame(
                n, n / self.fps, last.image, last.landmarks, last.pose, last.eyes, self._features.num_samples, True
            )
        frame = self._render(n, centre, final_rows)
        cost = self.clock() - started
        # the first render pays one-off set-up costs: not a measure of the next ones
        if self._rendered == 1:
            self._cost = cost
        elif self._rendered > 1:
            self._cost += COST_SMOOTHING * (cost - self._cost)
        self._rendered += 1
        self._last = frame
        self._in_time += 1
        if self._overloaded and self._in_time >= self.fps:
            self._overloaded = False
            log.info("caught up: frames are rendered in time again (%d repeated so far)", self.repeated_frames)
        return frame

    def _inputs(self, n: int, centre: int, final_rows: int | None) -> tuple[np.ndarray, Motion, StreamFrame]:
        """Frame n's audio window and motion, and its frame with everything but the pictures."""
        rows = centre + np.arange(-(self.window - self.lookahead), self.lookahead)
        # clipping as apb2face.data.audio.frame_windows: row 0 repeats before the start; the last row after the end
        # (known only once the stream is final; before that every row of the window exists)
        rows = np.clip(rows, 0, (final_rows if final_rows is not None else self._rows.count) - 1)
        window = self._rows.take(rows)
        motion = self._motion.take(1)
        empty = np.zeros(0)
        meta = StreamFrame(n, n / self.fps, empty, empty, motion.pose[0], motion.eyes[0], self._features.num_samples)
        return window, motion, meta

    def _render(self, n: int, centre: int, final_rows: int | None) -> StreamFrame:
        window, motion, meta = self._inputs(n, centre, final_rows)
        frames, landmarks = self.pipeline.step(self.reference, window[None], motion.pose, motion.eyes)
        return replace(meta, image=frames[0], landmarks=landmarks[0])

    def _submit(self, n: int, centre: int, final_rows: int | None) -> list[StreamFrame]:
        """Start frame n on the pool; first make room (wait for the oldest frame) when the queue is full."""
        done = self._collect(wait=False)
        if len(self._in_flight) >= self.workers * IN_FLIGHT_PER_WORKER:
            done += self._collect(wait=True, count=1)
        window, motion, meta = self._inputs(n, centre, final_rows)
        future = self._pool.submit(self.pipeline.step, self.reference, window[None], motion.pose, motion.eyes)
        self._in_flight.append((meta, future))
        return done

    def _collect(self, wait: bool, count: int | None = None) -> list[StreamFrame]:
        """The frames finished on the pool, oldest first, stopping at the first one still rendering (wait: waiting
        for it, for `count` frames or all of them)."""
        out = []
        while self._in_flight and (count is None or len(out) < count):
            meta, future = self._in_flight[0]
            if not wait and not future.done():
                break
            frames, landmarks = future.result()  # an error in a worker is raised here, in the caller's thread
            self._in_flight.popleft()
            out.append(replace(meta, image=frames[0], landmarks=landmarks[0]))
        return out


def as_float_pcm(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        pcm = pcm.reshape(-1)
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind != "f":
        raise UserError(f"PCM chunks must be float or int16 mono samples, got {pcm.dtype}")
    return pcm.astype(np.float32, copy=False)


# -------------------------------------------------------------------------------------------------- live timing


@dataclass
class LiveTiming:
    """Audio-to-frame latency of a simulated live source: a frame's latency is the wall time at which it is ready
    minus the wall time at which its own instant of audio was spoken (chunks arrive when they are complete)."""

    latencies_ms: np.ndarray
    chunk_ms: float
    frames: int
    wall_s: float
    audio_s: float
    busy_s: float = 0.0  # wall time spent inside push(): features, windows, motion and rendering
    repeated: int = 0  # frames repeated instead of rendered (a real-time session under overload)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    @property
    def budget_share(self) -> float:
        """Share of real time the stream's work takes: compute per frame over the frame period (1.0 = no slack)."""
        return self.busy_s / self.audio_s if self.audio_s > 0 else float("nan")


def simulate_live(
    session: StreamingSession,
    pcm: np.ndarray,
    chunk_ms: float = 20.0,
    clock: Any = time.perf_counter,
    sleep: Any = time.sleep,
    on_frame: Callable[[StreamFrame], None] | None = None,
) -> LiveTiming:
    """Feed `pcm` (16 kHz) to `session` paced like a microphone: chunk k is pushed when its last sample has been
    spoken (start + (k + 1) * chunk). If rendering falls behind, later chunks are pushed late and latencies grow
    (unless the session is in real-time mode, which repeats frames to stay in sync; give it the same clock).
    on_frame: called with each frame pushed out before the end."""
    chunk = max(1, int(round(chunk_ms / 1000 * A.SAMPLE_RATE)))
    latencies = []
    busy = 0.0
    start = clock()
    for lo in range(0, len(pcm), chunk):
        due = start + min(lo + chunk, len(pcm)) / A.SAMPLE_RATE
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        pushed = clock()
        frames = session.push(pcm[lo : lo + chunk], due)
        done = clock()
        busy += done - pushed
        latencies += [(done - (start + frame.timestamp)) * 1000.0 for frame in frames]
        if on_frame is not None:
            for frame in frames:
                on_frame(frame)
    wall = clock() - start
    session.finish()
    audio_s = len(pcm) / A.SAMPLE_RATE
    return LiveTiming(np.asarray(latencies), chunk_ms, len(latencies), wall, audio_s, busy, session.repeated_frames)
