"""Re-voice a video: the same frames at the same resolution and frame rate, the face (or only its lower half)
replaced by a generated one whose head pose and blinks follow the video and whose mouth follows new audio.

    report = revoice(pipe, "id00", "talk.mp4", "new_speech.wav", "dubbed.mp4", RevoiceConfig(region="mouth"))

Two passes over the video, never holding more than a few frames:

1. track    `track_video`   decode every frame once, find the face (the face mesh in video mode, as `prepare` and
                            `motion_from_video` measure it), keep per frame only the pose, eye aspect ratios and the
                            few landmarks the paste needs; boxes are smoothed in time (`compose.smooth_track`)
2. render   `revoice`       the output's frames play the video forward, then backward, then forward ... (ping-pong,
                            no jump) for as long as the new audio lasts; per batch: generate the crops (`pipe.step`),
                            read the frames (`FrameReader`: sequential decoding, short backward chunks by seeking),
                            paste (`compose.paste`), encode (`Mp4Writer`, atomic, audio pushed batch by batch)

Frames where no face was found pass through unchanged. The new audio replaces the old; `mix=True` keeps the old one
under it (played once from the start, at `mix_gain`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from apb2face.data import audio as A
from apb2face.data.face import (
    CropBox,
    FaceMesh,
    FaceSettings,
    PoseEstimator,
    crop_box_from_landmarks,
    eye_aspect_ratios,
)
from apb2face.data.video import Mp4Writer, VideoInfo, frame_to_rgb, probe, resample_timestamps
from apb2face.errors import UserError
from apb2face.inference.compose import PASTE_POINTS, ColourMatcher, ComposeConfig, Pasted, paste, smooth_track
from apb2face.inference.faces import detect_video_face
from apb2face.inference.limits import DEFAULT_MAX_SECONDS
from apb2face.inference.motion import ears_to_openness
from apb2face.inference.pipeline import (
    APB2FacePipeline,
    AudioInput,
    DrivingAudio,
    Reference,
    ReferenceState,
    check_fps,
)

log = logging.getLogger(__name__)

MAX_FRAME_PIXELS = 4096 * 2304  # 4K (UHD and DCI) and anything smaller; 8K would need gigabytes per chunk
STAGES = ("decode", "track", "generate", "blend", "encode")


@dataclass(frozen=True)
class RevoiceConfig:
    """How a video is re-voiced; validates itself (UserError)."""

    compose: ComposeConfig = field(default_factory=ComposeConfig)
    box_sigma: float = 2.0  # frames: centred Gaussian on the crop box centre track
    side_sigma: float = 4.0  # frames: the same on the box side (size changes show more than small shifts)
    pose_sigma: float = 1.5  # frames: on the measured head pose that drives the model (PnP noise makes the
    # generated head tremble; blinks are left unsmoothed, they last only 4-6 frames)
    mix: bool = False  # keep the video's own audio under the new one
    mix_gain: float = 0.3  # its level when mixed
    batch_size: int = 16  # frames per model call
    crf: int = 14  # the untouched part of the frame survives the re-encode at about 45 dB PSNR (crf 20: 42.6)
    preset: str = "veryfast"  # x264 preset of the output
    max_seconds: float | None = DEFAULT_MAX_SECONDS  # longer new audio is refused
    cache_megabytes: int = 256  # decoded frames kept for backward (ping-pong) playback

    def __post_init__(self) -> None:
        if not all(0.0 <= v <= 25.0 for v in (self.box_sigma, self.side_sigma, self.pose_sigma)):
            raise UserError("box_sigma, side_sigma and pose_sigma must lie in [0, 25] frames")
        if not 0.0 <= self.mix_gain <= 1.0:
            raise UserError(f"mix_gain must lie in [0, 1], got {self.mix_gain:g}")
        if not 1 <= self.batch_size <= 256:
            raise UserError(f"batch_size must be 1 to 256, got {self.batch_size}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"crf must be 0 to 51, got {self.crf}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise UserError(f"max_seconds must be positive, got {self.max_seconds:g}")
        if not 16 <= self.cache_megabytes <= 8192:
            raise UserError(f"cache_megabytes must be 16 to 8192, got {self.cache_megabytes}")


class StageTimer:
    """Wall time per stage, accumulated (perf_counter)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


# ------------------------------------------------------------------------------------------------------ 1. track


@dataclass(frozen=True)
class FaceTrack:
    """What pass 1 keeps of each source frame (a few hundred bytes; never the pixels)."""

    shape: tuple[int, int]  # (H, W) of the upright frames
    fps: float  # the video's average frame rate: the output's rate
    pts: np.ndarray  # (N,) int64 presentation timestamps, for seeking
    times: np.ndarray  # (N,) seconds from the first frame
    found: np.ndarray  # (N,) bool: a face was found (and is big enough)
    points: np.ndarray  # (N, P, 2) float32 PASTE_POINTS in frame pixels (0 where not found)
    boxes: np.ndarray  # (N, 3) smoothed crop box cx, cy, side in frame pixels
    raw_boxes: np.ndarray  # (N, 3) the same before smoothing
    pose: np.ndarray  # (N, 3) yaw, pitch, roll degrees, interpolated across frames without a face
    eyes: np.ndarray  # (N, 2) openness, likewise

    def __len__(self) -> int:
        return len(self.pts)

    def box(self, index: int) -> CropBox:
        cx, cy, side = self.boxes[index]
        return CropBox(float(cx), float(cy), float(side))

    def ticks(self) -> np.ndarray:
        """The source frame shown at each tick of the output rate (VFR sources repeat or drop frames)."""
        return resample_timestamps(list(self.times), self.fps)


class TrackBuilder:
    """Collects one face's per-frame readings while a video is decoded (one builder per face: each has its own
    warm-started pose solver) and turns them into a smoothed `FaceTrack`."""

    def __init__(self, crop_scale: float, eye_percentile: float) -> None:
        self.crop_scale = crop_scale
        self.eye_percentile = eye_percentile
        self.estimator = PoseEstimator()
        self.found: list[bool] = []
        self.points: list[np.ndarray] = []
        self.boxes: list[tuple[float, float, float]] = []
        self.pose: list[tuple[float, float, float]] = []
        self.ears: list[tuple[float, float]] = []

    def add(self, landmarks: np.ndarray | None) -> None:
        """The next frame's landmarks of this face (frame pixels), or None where it was not found."""
        self.found.append(landmarks is not None)
        if landmarks is None:
            self.points.append(np.zeros((len(PASTE_POINTS), 2), np.float32))
            self.boxes.append((0.0, 0.0, 0.0))
            self.pose.append((0.0, 0.0, 0.0))
            self.ears.append((0.0, 0.0))
            return
        box = crop_box_from_landmarks(landmarks, self.crop_scale)
        self.points.append(landmarks[list(PASTE_POINTS), :2].astype(np.float32))
        self.boxes.append((box.cx, box.cy, box.side))
        self.pose.append(self.estimator(landmarks))
        self.ears.append(eye_aspect_ratios(landmarks))

    def finish(
        self, shape: tuple[int, int], fps: float, pts: np.ndarray, times: np.ndarray, config: RevoiceConfig
    ) -> FaceTrack:
        """The track, boxes and pose smoothed with `config`'s sigmas; needs at least one frame with the face."""
        mask = np.asarray(self.found)
        raw = np.asarray(self.boxes, np.float64)
        smoothed = np.concatenate(
            [smooth_track(raw[:, :2], mask, config.box_sigma), smooth_track(raw[:, 2:], mask, config.side_sigma)],
            axis=1,
        )
        filled_pose = fill_missing(np.asarray(self.pose, np.float64), mask)
        t = np.asarray(times, np.float64)
        return FaceTrack(
            shape=shape,
            fps=float(fps),
            pts=np.asarray(pts, np.int64),
            times=t - t[0],
            found=mask,
            points=np.asarray(self.points, np.float32),
            boxes=smoothed,
            raw_boxes=raw,
            pose=smooth_track(filled_pose, np.ones(len(mask), bool), config.pose_sigma).astype(np.float32),
            eyes=ears_to_openness(fill_missing(np.asarray(self.ears, np.float64), mask), self.eye_percentile),
        )


def track_video(
    path: str | Path,
    config: RevoiceConfig,
    timer: StageTimer | None = None,
    crop_scale: float | None = None,
) -> FaceTrack:
    """Pass 1: decode every frame of `path` once and track the face. UserError when the file has no video stream,
    no frames, frames larger than 4K, or no face in any frame."""
    timer = timer or StageTimer()
    info = check_video_size(path)
    settings = FaceSettings()
    builder = TrackBuilder(settings.crop_scale if crop_scale is None else crop_scale, settings.eye_percentile)
    pts, times = [], []
    shape = (info.height, info.width)
    with FaceMesh(video=True, min_confidence=settings.min_confidence) as mesh:
        for rgb, pts_k, time_k in rgb_frames(path, info.fps, timer):
            with timer("track"):
                shape = rgb.shape[:2]
                pts.append(pts_k)
                times.append(time_k)
                builder.add(detect_video_face(mesh, rgb, settings))
    if not pts:
        raise UserError("video stream has no frames", path)
    mask = np.asarray(builder.found)
    if not mask.any():
        raise UserError("no face found in any frame of the video", path)
    if not mask.all():
        log.info("%s: no face in %d of %d frames; they pass through unchanged", path, (~mask).sum(), len(mask))
    return builder.finish(shape, info.fps, np.asarray(pts), np.asarray(times), config)


def check_video_size(path: str | Path) -> VideoInfo:
    """The video's header (`probe`); UserError when its frames are larger than 4K."""
    info = probe(path)
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise UserError(f"video is {info.width}x{info.height}; re-voicing takes up to 4K (4096x2304)", path)
    return info


def rgb_frames(path: str | Path, fps: float, timer: StageTimer) -> Iterator[tuple[np.ndarray, int, float]]:
    """(upright RGB frame, timestamp for seeking, seconds) of every frame, decoding and conversion counted as
    'decode'; frames without timestamps are numbered at `fps`."""
    for k, frame in enumerate(decoded_frames(path, timer)):
        with timer("decode"):
            rgb = frame_to_rgb(frame)
        yield rgb, k if frame.pts is None else int(frame.pts), float(frame.time) if frame.time is not None else k / fps


def decoded_frames(path: str | Path, timer: StageTimer) -> Iterator[av.VideoFrame]:
    """The first video stream's frames, in presentation order (decoding counted as 'decode')."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = container.decode(stream)
            while True:
                with timer("decode"):
                    frame = next(frames, None)
                if frame is None:
                    return
                yield frame
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode video ({str(exc).splitlines()[0][:160]})", path) from None


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, C) rows where `found` is False replaced by linear interpolation from the found ones (held at the ends)."""
    x = np.arange(len(values))
    return np.stack([np.interp(x, x[found], values[found, c]) for c in range(values.shape[1])], axis=1)


# ------------------------------------------------------------------------------------------------ 2. play order


def pingpong(num_ticks: int, count: int, start: int = 0) -> np.ndarray:
    """`count` tick indices playing 0..num_ticks-1 forward, then backward, then forward ... (the turning frames are
    not repeated, so motion never stops or jumps), from output frame `start` on (a stream takes them piece by
    piece)."""
    if num_ticks < 1:
        raise ValueError("num_ticks must be at least 1")
    k = np.arange(start, start + count)
    if num_ticks == 1:
        return np.zeros(count, np.int64)
    period = 2 * (num_ticks - 1)
    j = k % period
    return np.where(j < num_ticks, j, period - j).astype(np.int64)


class FrameReader:
    """Decoded upright RGB frames of a video by index, for a play order that runs forward and backward.

    Forward requests decode sequentially; a request behind the decoder seeks to the keyframe before a chunk of
    `chunk` frames ending at the request, decodes that chunk into a small cache, and the following backward requests
    are served from it. Memory: `chunk` + 2 frames. Indices are those of `FaceTrack.pts` (one per decoded frame).
    """

    def __init__(self, path: str | Path, pts: np.ndarray, chunk: int, timer: StageTimer | None = None) -> None:
        self.path = Path(path)
        self.pts = np.asarray(pts, np.int64)
        self.index_of = {int(p): i for i, p in enumerate(self.pts)}
        self.chunk = max(1, int(chunk))
        self.timer = timer or StageTimer()
        self.seeks = 0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._next = 0  # index of the next frame the decoder will produce

    def __enter__(self) -> FrameReader:
        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._decoded = self._container.decode(self._stream)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._container is not None:
            self._container.close()
        self._cache.clear()

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame `index` (a cached array: copy it before changing it)."""
        index = int(index)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        with self.timer("decode"):
            keep_from = index
            if index < self._next:
                keep_from = max(0, index - self.chunk + 1)
                self._seek(keep_from)
            while True:
                frame = next(self._decoded, None)
                if frame is None:
                    raise UserError(f"video ended before frame {index} on the second pass", self.path)
                i = self._index(frame)
                self._next = i + 1
                if i >= keep_from:
                    self._cache[i] = frame_to_rgb(frame)
                    while len(self._cache) > self.chunk + 2:
                        self._cache.popitem(last=False)
                if i >= index:
                    break
        return self._cache[index]

    def _index(self, frame: av.VideoFrame) -> int:
        if frame.pts is None:  # no timestamps: frames are counted from wherever decoding (re)started
            return self._next
        return self.index_of.get(int(frame.pts), self._next)

    def _seek(self, target: int) -> None:
        """Restart decoding at the keyframe at or before frame `target` (or at the start when that fails)."""
        self.seeks += 1
        self._cache.clear()
        try:
            self._container.seek(int(self.pts[target]), stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            target = 0
            self._container.seek(int(self.pts[0]), stream=self._stream, backward=True, any_frame=False)
        self._decoded = self._container.decode(self._stream)
        first = next(self._decoded, None)
        if first is None or first.pts is None or self.index_of.get(int(first.pts), target + 1) > target:
            # landed after the target (or cannot tell): decode from the very start, counting frames
            self._container.seek(int(self.pts[0]), stream=self._stream, backward=True, any_frame=False)
            self._decoded = self._container.decode(self._stream)
            self._next = 0
            return
        self._next = self.index_of[int(first.pts)]
        self._decoded = _chain(first, self._decoded)


def _chain(first: av.VideoFrame, rest: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    yield first
    yield from rest


def cache_frames(shape: tuple[int, int], megabytes: int) -> int:
    """How many upright RGB frames of `shape` fit in `megabytes` (2 to 32)."""
    return int(np.clip(megabytes * 2**20 // (shape[0] * shape[1] * 3), 2, 32))


# ------------------------------------------------------------------------------------------------------ 3. audio


def soundtrack(new: np.ndarray, sample_rate: int, video: str | Path, config: RevoiceConfig) -> np.ndarray:
    """The output's audio: the new audio, or with `mix` the video's own audio under it (once from the start, at
    `mix_gain`), scaled down only if the sum would clip."""
    if not config.mix:
        return new
    if not probe(video).has_audio:
        log.warning("%s has no audio to mix under the new one", video)
        return new
    old = A.load_audio(video, sample_rate, max_seconds=config.max_seconds)[: len(new)]
    mixed = new.astype(np.float32).copy()
    mixed[: len(old)] += config.mix_gain * old
    peak = float(np.abs(mixed).max(initial=0.0))
    return mixed / peak if peak > 1.0 else mixed


# ------------------------------------------------------------------------------------------- 4. generate + paste


@dataclass(frozen=True)
class PasteJob:
    """One face generated from `reference`, driven by `driving` and the per-output-frame `pose` / `eyes`, and
    pasted where `track` found it."""

    reference: ReferenceState
    driving: DrivingAudio
    track: FaceTrack
    pose: np.ndarray  # (n, 3) per output frame
    eyes: np.ndarray  # (n, 2) per output frame
    colour: ColourMatcher


def paste_face(
    frame: np.ndarray, crop: np.ndarray, track: FaceTrack, source: int, compose: ComposeConfig, colour: ColourMatcher
) -> Pasted | None:
    """Paste a generated `crop` into `frame` (in place) where `track` found its face in source frame `source`; None
    where it was not found (the face passes through, and the colour matcher starts afresh after the gap)."""
    if not track.found[source]:
        colour.reset()
        return None
    return paste(frame, crop, track.box(source), track.points[source], compose, colour)


@dataclass(frozen=True)
class PastedBatch:
    """One batch of output frames with every job's face pasted in."""

    index: np.ndarray  # (n,) output frame indices
    sources: np.ndarray  # (n,) the source frame each shows
    frames: list[np.ndarray]  # n full frames (H, W, 3) uint8, copies the caller owns
    pasted: list[list[Pasted | None]]  # per frame, one entry per job (None where that face was not found)
    landmarks: list[np.ndarray]  # per job, (n, K, 2) the fuser's landmarks in [0, 1] of the crop


def paste_batches(
    pipe: APB2FacePipeline,
    jobs: list[PasteJob],
    source: np.ndarray,
    frames: Callable[[int], np.ndarray],
    fps: float,
    compose: ComposeConfig,
    batch_size: int,
    timer: StageTimer,
) -> Iterator[PastedBatch]:
    """Output frames 0..n-1 (n = len(source), at `fps`) in batches: frame k is source frame `source[k]` (`frames(s)`,
    a cached array: it is copied) with every job's face generated and pasted (in job order)."""
    n = len(source)
    batches = [pipe.window_batches(job.driving.chunks(), n, fps, batch_size) for job in jobs]
    for per_job in zip(*batches):
        idx = per_job[0][0]
        crops, landmarks = [], []
        with timer("generate"):
            for job, (_idx, windows) in zip(jobs, per_job):
                crop, marks = pipe.step(job.reference, windows, job.pose[idx], job.eyes[idx])
                crops.append(crop)
                landmarks.append(marks)
        sources = np.asarray(source[idx], np.int64)
        out, pasted_all = [], []
        for i, s in enumerate(sources.tolist()):
            frame = frames(s).copy()
            with timer("blend"):
                pasted = [paste_face(frame, c[i], job.track, s, compose, job.colour) for job, c in zip(jobs, crops)]
            out.append(frame)
            pasted_all.append(pasted)
        yield PastedBatch(idx, sources, out, pasted_all, landmarks)


def write_pasted(
    pipe: APB2FacePipeline,
    jobs: list[PasteJob],
    source: np.ndarray,
    frames: Callable[[int], np.ndarray],
    writer: Mp4Writer,
    sound: np.ndarray,
    compose: ComposeConfig,
    batch_size: int,
    timer: StageTimer,
    progress: Callable[[int], None] | None = None,
    on_frame: Callable[[int, int, np.ndarray, list[Pasted | None]], None] | None = None,
) -> int:
    """Write the frames of `paste_batches` to `writer`, with `sound` (at the writer's audio rate) pushed batch by
    batch. `on_frame(k, s, frame, pasted)` sees each frame before encoding, `pasted` one entry per job (None where
    that face was not found). Returns the output frames where some face passed through."""
    seconds_per_frame = writer.audio_rate / writer.fps
    written_samples = passed = 0
    for batch in paste_batches(pipe, jobs, source, frames, writer.fps, compose, batch_size, timer):
        for k, s, frame, pasted in zip(batch.index.tolist(), batch.sources.tolist(), batch.frames, batch.pasted):
            passed += any(p is None for p in pasted)
            if on_frame is not None:
                on_frame(k, s, frame, pasted)
            with timer("encode"):
                writer.write_frame(frame)
        with timer("encode"):
            upto = min(len(sound), int(round((batch.index[-1] + 1) * seconds_per_frame)))
            writer.write_audio(sound[written_samples:upto])
            written_samples = upto
        if progress is not None:
            progress(len(batch.index))
    with timer("encode"):
        writer.write_audio(sound[written_samples:])
    return passed


# ------------------------------------------------------------------------------------------------- 5. the whole


@dataclass(frozen=True)
class RevoicePlan:
    """Everything a re-voice renders from, checked: the new audio, the video's face track, the source frame of each
    output frame (ping-pong) and the face to paste (its pose and blinks per output frame)."""

    driving: DrivingAudio
    track: FaceTrack
    source: np.ndarray  # (n,) source frame index per output frame
    job: PasteJob


def plan_revoice(
    pipe: APB2FacePipeline,
    reference: Reference,
    video: str | Path,
    audio: AudioInput,
    config: RevoiceConfig,
    sample_rate: int | None = None,
    allow_unknown: bool = False,
    track: FaceTrack | None = None,
    timer: StageTimer | None = None,
) -> RevoicePlan:
    """The cheap checks first (a bad reference or audio fails before the video is decoded), then the face track
    (`track_video`, unless the caller has it: an avatar clip's cached one)."""
    fps = probe(video).fps if track is None else track.fps
    check_fps(fps)
    ref = pipe.prepare_reference(reference, allow_unknown=allow_unknown)
    driving = pipe.prepare_audio(audio, sample_rate, fps, config.max_seconds)
    if track is None:
        track = track_video(video, config, timer, crop_scale=pipe.crop_scale)
    ticks = track.ticks()
    source = ticks[pingpong(len(ticks), driving.num_frames)]
    job = PasteJob(ref, driving, track, track.pose[source], track.eyes[source], ColourMatcher(config.compose))
    return RevoicePlan(driving, track, source, job)


def full_frame_batches(
    pipe: APB2FacePipeline, video: str | Path, plan: RevoicePlan, config: RevoiceConfig
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(full frames (n, H, W, 3) uint8, landmarks (n, K, 2)) per batch of the re-voiced `video`, as `revoice` pastes
    them, without encoding: `APB2FacePipeline.generate(full_frame=True)`."""
    timer = StageTimer()
    chunk = cache_frames(plan.track.shape, config.cache_megabytes)
    with FrameReader(video, plan.track.pts, chunk, timer) as reader:
        for batch in paste_batches(
            pipe, [plan.job], plan.source, reader.__getitem__, plan.track.fps, config.compose, config.batch_size, timer
        ):
            yield np.stack(batch.frames), batch.landmarks[0]


@dataclass(frozen=True)
class RevoiceReport:
    frames: int  # output frames written
    source_frames: int  # frames in the video
    fps: float
    size: tuple[int, int]  # (H, W)
    faces_found: int  # source frames with a face
    passed_through: int  # output frames without a face (unchanged)
    seeks: int  # backward chunks decoded for ping-pong playback
    seconds: dict[str, float]  # wall time per stage
    wall_seconds: float  # everything, loading the reference and audio included


def revoice(
    pipe: APB2FacePipeline,
    reference: Reference,
    video: str | Path,
    audio: AudioInput,
    out: str | Path,
    config: RevoiceConfig | None = None,
    *,
    sample_rate: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_frame: Callable[[int, int, np.ndarray, object], None] | None = None,
    allow_unknown: bool = False,
    track: FaceTrack | None = None,
) -> RevoiceReport:
    """Write `out` (MP4): `video` re-voiced with `audio` (a path, or an array with `sample_rate`), the face generated
    from `reference` (an identity, a photo, or an RGB array: for a real person, a frame of their own video).

    `progress(n)` is called after each batch with the frames written; `on_frame(k, source_index, frame, pasted)`
    sees every output frame before it is encoded (measurements; `pasted` is None for pass-through frames).
    A photo of someone the checkpoint does not know is refused unless `allow_unknown` (`prepare_reference`).
    `track`: the video's face track when it is already known (an avatar clip's cached one, `inference.avatar`)."""
    config = config or RevoiceConfig()
    started = time.perf_counter()
    timer = StageTimer()
    plan = plan_revoice(pipe, reference, video, audio, config, sample_rate, allow_unknown, track, timer)
    track, job, driving, source, n = plan.track, plan.job, plan.driving, plan.source, len(plan.source)
    sound = soundtrack(driving.audio, driving.sample_rate, video, config)
    chunk = cache_frames(track.shape, config.cache_megabytes)
    with (
        Mp4Writer(
            out, fps=track.fps, audio_rate=driving.sample_rate, size=track.shape, crf=config.crf, preset=config.preset
        ) as writer,
        FrameReader(video, track.pts, chunk, timer) as reader,
    ):
        one_face = None if on_frame is None else lambda k, s, frame, pasted: on_frame(k, s, frame, pasted[0])
        passed = write_pasted(
            pipe,
            [job],
            source,
            reader.__getitem__,
            writer,
            sound,
            config.compose,
            config.batch_size,
            timer,
            progress,
            one_face,
        )
    return RevoiceReport(
        frames=n,
        source_frames=len(track),
        fps=track.fps,
        size=track.shape,
        faces_found=int(track.found.sum()),
        passed_through=passed,
        seeks=reader.seeks,
        seconds=dict(timer.seconds),
        wall_seconds=time.perf_counter() - started,
    )
