"""Pass 2's per-batch work: generate each face's crops (`pipe.step`), paste them into copies of the source frames
(`compose.paste`: feathered mask, colour match, inside the smoothed box) and hand the frames to the encoder with the
sound (`write_pasted`). With `overlap`, the source frames are read ahead and the output encoded behind the model in
threads of their own (`overlap`): the same frames, in the same order, at about the pace of the slowest stage."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from apb2face.data.video import Mp4Writer
from apb2face.inference.compose import ColourMatcher, ComposeConfig, Pasted, paste
from apb2face.inference.pipeline import APB2FacePipeline, DrivingAudio, ReferenceState
from apb2face.inference.revoice.frames import cache_frames
from apb2face.inference.revoice.overlap import SerialWorker, prefetch
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


READ_AHEAD = 8  # source frames decoded ahead of the model, at most (and within READ_AHEAD_MEGABYTES)
READ_AHEAD_MEGABYTES = 64
ENCODE_QUEUE_MEGABYTES = 128  # finished frames waiting for the encoder (a batch of 1080p; 4 frames of 4K)


def paste_batches(
    pipe: APB2FacePipeline,
    jobs: list[PasteJob],
    source: np.ndarray,
    frames: Callable[[int], np.ndarray],
    fps: float,
    compose: ComposeConfig,
    batch_size: int,
    timer: StageTimer,
    read_ahead: int = 0,
) -> Iterator[PastedBatch]:
    """Output frames 0..n-1 (n = len(source), at `fps`) in batches: frame k is source frame `source[k]` (`frames(s)`,
    a cached array: it is copied) with every job's face generated and pasted (in job order). `read_ahead` > 0 reads
    (and copies) the source frames that many ahead in a thread of their own; `frames` must then be used by nobody
    else until the iteration ends (close the generator to end it early)."""
    n = len(source)
    batches = [pipe.window_batches(job.driving.chunks(), n, fps, batch_size) for job in jobs]
    with prefetch(source_copies(frames, source, timer), read_ahead, "revoice-decode") as copies:
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
                frame = next(copies)
                with timer("blend"):
                    pasted = [
                        paste_face(frame, c[i], job.track, s, compose, job.colour) for job, c in zip(jobs, crops)
                    ]
                out.append(frame)
                pasted_all.append(pasted)
            yield PastedBatch(idx, sources, out, pasted_all, landmarks)


def source_copies(frames: Callable[[int], np.ndarray], source: np.ndarray, timer: StageTimer) -> Iterator[np.ndarray]:
    """A copy of source frame `source[k]` for each output frame k, in order (the copy counted as 'decode', as the
    reading is by `FrameReader`)."""
    for s in np.asarray(source, np.int64).tolist():
        image = frames(s)
        with timer("decode"):
            frame = image.copy()
        yield frame


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
    overlap: bool = True,
) -> int:
    """Write the frames of `paste_batches` to `writer`, with `sound` (at the writer's audio rate) pushed batch by
    batch. `on_frame(k, s, frame, pasted)` sees each frame before encoding, `pasted` one entry per job (None where
    that face was not found); `progress(n)` follows each batch handed to the encoder. Returns the output frames
    where some face passed through.

    `overlap`: decoding, the model with the paste, and encoding run in three threads (the frames and the file are
    the same). Either way, on return or on an error every thread has ended, so the caller's `writer` discards its
    partial file and `frames` may be closed; an error in any stage is raised here unchanged."""
    seconds_per_frame = writer.audio_rate / writer.fps
    written_samples = passed = 0

    def encode_frame(frame: np.ndarray) -> None:
        with timer("encode"):
            writer.write_frame(frame)

    def encode_audio(pcm: np.ndarray) -> None:
        with timer("encode"):
            writer.write_audio(pcm)

    read_ahead = encode_queue = 0
    if overlap:
        shape = jobs[0].track.shape if jobs else (1080, 1920)
        read_ahead = min(READ_AHEAD, cache_frames(shape, READ_AHEAD_MEGABYTES))
        encode_queue = min(batch_size, cache_frames(shape, ENCODE_QUEUE_MEGABYTES))
    with contextlib.ExitStack() as stack:
        # left in reverse: the reading thread stops, then the encoder's (whichever failed), before the caller closes
        # the reader and the writer
        encoder = stack.enter_context(SerialWorker(encode_queue, "revoice-encode")) if overlap else None
        submit = encoder.submit if encoder is not None else (lambda call, *args: call(*args))
        batches = stack.enter_context(
            contextlib.closing(
                paste_batches(pipe, jobs, source, frames, writer.fps, compose, batch_size, timer, read_ahead)
            )
        )
        for batch in batches:
            for k, s, frame, pasted in zip(batch.index.tolist(), batch.sources.tolist(), batch.frames, batch.pasted):
                passed += any(p is None for p in pasted)
                if on_frame is not None:
                    on_frame(k, s, frame, pasted)
                submit(encode_frame, frame)
            upto = min(len(sound), int(round((batch.index[-1] + 1) * seconds_per_frame)))
            submit(encode_audio, sound[written_samples:upto])
            written_samples = upto
            if progress is not None:
                progress(len(batch.index))
        submit(encode_audio, sound[written_samples:])
        if encoder is not None:
            encoder.finish()
    return passed
