"""The whole re-voice: plan it (the cheap checks, then the face track and the play order), then render it
(`revoice` into an MP4, or `full_frame_batches` as arrays)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apb2face.data.video import Mp4Writer, probe
from apb2face.inference.compose import ColourMatcher
from apb2face.inference.pipeline import (
    APB2FacePipeline,
    AudioInput,
    DrivingAudio,
    Reference,
    check_fps,
)
from apb2face.inference.revoice.config import RevoiceConfig
from apb2face.inference.revoice.frames import FrameReader, cache_frames
from apb2face.inference.revoice.paste import PasteJob, paste_batches, write_pasted
from apb2face.inference.revoice.playback import pingpong, soundtrack
from apb2face.inference.revoice.timing import StageTimer
from apb2face.inference.revoice.tracking import FaceTrack, track_video


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
            out,
            fps=track.fps,
            audio_rate=driving.sample_rate,
            size=track.shape,
            crf=config.crf,
            preset=config.preset,
            sampled_chroma=True,  # the frames are the video's own (`frame_to_rgb`) but for a smooth generated face
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
            overlap=config.overlap,
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
