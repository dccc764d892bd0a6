"""Pass 2's per-batch work: generate each face's crops (`pipe.step`), paste them into copies of the source frames
(`compose.paste`: feathered mask, colour match, inside the smoothed box) and hand the frames to the encoder with the
sound (`write_pasted`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from apb2face.data.video import Mp4Writer
from apb2face.inference.compose import ColourMatcher, ComposeConfig, Pasted, paste
from apb2face.inference.pipeline import APB2FacePipeline, DrivingAudio, ReferenceState
from apb2face.inference.revoice.timing import StageTimer
from apb2face.inference.revoice.tracking import FaceTrack


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
