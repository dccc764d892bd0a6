"""One video, end to end: decode at a constant rate, track and crop the face, align the audio, cut and write the
clips, then the video's report and contact sheet. A video that cannot be prepared raises a UserError naming it, and
the clips it wrote are removed."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.audio import load_audio, num_video_frames, rms_per_frame
from apb2face.data.format import DatasetWriter
from apb2face.data.prepare.jobs import REPORTS_DIR, WORK_DIR, PrepareConfig, VideoJob, VideoResult
from apb2face.data.prepare.report import VideoFacts, contact_sheet, video_report
from apb2face.data.prepare.sync import OffsetEstimate, cut_clips, estimate_offset, shift_audio
from apb2face.data.prepare.track import CropStore, Track, analyse
from apb2face.data.video import ConstantRateFrames, VideoInfo, probe
from apb2face.errors import UserError
from apb2face.io import atomic_path, write_json


@dataclass
class _Audio:
    """The job's audio at the dataset rate, aligned to the first video frame."""

    samples: np.ndarray
    source: str  # "own track" or the file's name
    start_shift: float  # seconds of alignment applied to the container's audio start


@dataclass
class VideoPass:
    """What the pass over one video gives every face written from it: the source, its aligned audio and loudness per
    frame, the frames covered by both video and audio, the offset applied, and when the video was begun."""

    info: VideoInfo
    reader: ConstantRateFrames
    audio: _Audio
    rms: np.ndarray  # (n,) of the aligned audio
    n: int
    offset: OffsetEstimate
    started: float  # time.perf_counter() at the start: the report's time taken


def stream_start(path: str) -> tuple[float, float | None]:
    """Start times (s) of the first video and audio streams as the container states them (audio None if absent)."""
    try:
        with av.open(path) as c:
            v = c.streams.video[0] if c.streams.video else None
            a = c.streams.audio[0] if c.streams.audio else None
            vs = float(v.start_time * v.time_base) if v is not None and v.start_time is not None else 0.0
            as_ = float(a.start_time * a.time_base) if a is not None and a.start_time is not None else None
            return vs, as_
    except (av.error.FFmpegError, OSError, ValueError):
        return 0.0, None


def _has_audio_stream(path: str) -> bool:
    try:
        with av.open(path) as c:
            return bool(c.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        return False


def load_job_audio(job: VideoJob, cfg: PrepareConfig, first_video_pts: float) -> _Audio:
    """Mono audio at the dataset rate aligned to the first video frame (a separate audio file is taken as is)."""
    if job.audio is not None:
        return _Audio(load_audio(job.audio, cfg.sample_rate), Path(job.audio).name, 0.0)
    if not _has_audio_stream(job.path):
        raise UserError(
            f"no audio stream and no same-named audio file ({Path(job.path).stem}.wav) beside it; "
            "give one with --audio",
            job.path,
        )
    audio = load_audio(job.path, cfg.sample_rate)
    _, audio_start = stream_start(job.path)
    shift = 0.0 if audio_start is None else audio_start - first_video_pts
    k = int(round(shift * cfg.sample_rate))
    if k > 0:  # audio starts after the first frame: pad its front
        audio = np.concatenate([np.zeros(k, np.float32), audio])
    elif k < 0:
        audio = audio[-k:]
    return _Audio(audio, "own track", shift)


def prepare_video(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    progress: Callable[[int], None] | None = None,
    decode_threads: int = 0,
) -> VideoResult:
    """Prepare one video into clips under `out` (a dataset root). Raises UserError naming the file when it cannot be
    prepared; on any failure the clips it wrote are removed."""
    progress = progress or (lambda n: None)
    t_start = time.perf_counter()
    info = probe(job.path)
    reader = ConstantRateFrames(job.path, cfg.fps, threads=decode_threads)
    # a separate audio file is decoded first, so that a bad one fails before the long pass
    audio = load_job_audio(job, cfg, 0.0) if job.audio is not None else None
    store = CropStore(out / WORK_DIR / f"{job.identity}__{job.stem}.u8", cfg.size)
    result = VideoResult(job)
    written: list[Path] = []  # clip folders begun, removed again if the video fails
    try:
        # the video's own track is decoded after the frames: its alignment needs the first frame's time
        max_frames = num_video_frames(len(audio.samples), cfg.fps, cfg.sample_rate) if audio else 1 << 40
        track = analyse(reader, cfg, store, max_frames, progress)
        audio = audio or load_job_audio(job, cfg, reader.first_pts)
        crops = store.close()
        n = min(track.n, num_video_frames(len(audio.samples), cfg.fps, cfg.sample_rate))
        _check_found_a_face(job, track, n)
        rms = rms_per_frame(audio.samples, n, cfg.fps, cfg.sample_rate)
        offset = estimate_offset(track.mouth[:n], rms, cfg)
        if offset.applied:
            audio.samples = shift_audio(audio.samples, offset.frames, cfg.samples_per_frame)
            rms = rms_per_frame(audio.samples, n, cfg.fps, cfg.sample_rate)
        clips, test_from = cut_clips(track.segment, rms, n, cfg)
        if not clips:
            raise UserError(
                f"no clip of at least {cfg.min_clip_seconds:g} s with a steady face "
                f"({int(track.face[:n].sum())} of {n} frames had a face)",
                job.path,
            )
        source = VideoPass(info, reader, audio, rms, n, offset, t_start)
        write_face(job, out, cfg, source, track, crops, clips, test_from, result, written, _title(job))
        del crops
        return result
    except BaseException:
        for clip_dir in written:
            shutil.rmtree(clip_dir, ignore_errors=True)
        raise
    finally:
        store.discard()


def _title(job: VideoJob) -> str:
    return f"{Path(job.path).name} -> {job.identity}"


def _check_found_a_face(job: VideoJob, track: Track, n: int) -> None:
    if track.n == 0:
        raise UserError("no frames decoded", job.path)
    if not track.face[:n].any():
        raise UserError(f"no face found in any of {track.n} frames", job.path)


def write_face(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    source: VideoPass,
    track: Track,
    crops: np.ndarray,
    clips: list[tuple[int, int]],
    test_from: int | None,
    result: VideoResult,
    written: list[Path],
    title: str,
    extra_report: dict | None = None,
) -> None:
    """One face's output, as a one-person video and each person of a several-people video write it: its clips
    (`write_clips`), then its report (`video_report`, `extra_report`'s keys added, kept in `result`) and contact
    sheet titled `title` (`write_reports`)."""
    write_clips(job, out, cfg, track, crops, source.audio.samples, clips, test_from, source.offset, result, written)
    facts = VideoFacts(
        info=source.info,
        reader=source.reader,
        track=track,
        n=source.n,
        clips=clips,
        offset=source.offset,
        audio_source=source.audio.source,
        audio_shift=source.audio.start_shift,
        audio_seconds=len(source.audio.samples) / cfg.sample_rate,
        test_from=test_from,
        seconds=time.perf_counter() - source.started,
    )
    result.report = {**video_report(job, cfg, facts), **(extra_report or {})}
    write_reports(job, out, cfg, result.report, contact_sheet(track, crops, clips, source.rms, cfg, title))


def write_clips(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    track: Track,
    crops: np.ndarray,
    audio: np.ndarray,
    clips: list[tuple[int, int]],
    test_from: int | None,
    offset: OffsetEstimate,
    result: VideoResult,
    written: list[Path],
) -> None:
    """Write each clip (crops, audio, landmarks in crop coordinates, pose, eyes, source boxes) into `result`; each
    clip folder is added to `written` before it is begun, so that a failure can remove exactly what was written."""
    writer = DatasetWriter(out, image_size=cfg.size, sample_rate=cfg.sample_rate, fps=cfg.fps)
    spf = cfg.samples_per_frame
    open_ear = np.nanpercentile(track.ear[track.face], cfg.eye_percentile, axis=0)
    for index, (a, b) in enumerate(clips):
        name = f"{job.stem}_{index:03d}"
        clip_dir = out / "clips" / job.identity / name
        written.append(clip_dir)
        boxes = track.boxes[a:b]
        lm_crop = np.stack(
            [face.landmarks_to_crop(track.landmarks[j], face.CropBox(*boxes[j - a]), cfg.size) for j in range(a, b)]
        )
        ears = track.ear[a:b]
        clip_audio = audio[int(round(a * spf)) : int(round(b * spf))]
        clip_audio = np.pad(clip_audio, (0, int(round((b - a) * spf)) - len(clip_audio)))
        record = writer.add_clip(
            job.identity,
            name,
            frames=np.asarray(crops[track.row[a:b]]),
            audio=clip_audio,
            landmarks=lm_crop,
            pose=track.pose[a:b],
            eyes=face.eye_openness(ears, open_ear),
            extra={
                "source": Path(job.path).name,
                "source_start_frame": int(a),
                "source_start_seconds": round(a / cfg.fps, 4),
                "audio_offset_frames": offset.frames if offset.applied else 0,
                "landmark_scheme": "mediapipe-478",
            },
        )
        with atomic_path(clip_dir / "source_boxes.npy") as tmp:
            np.save(tmp, boxes.astype(np.float32), allow_pickle=False)
        result.records.append(record)
        result.ears[name] = ears.astype(np.float32)
        result.pitch[name] = track.pose[a:b, 1].astype(np.float32)
        if test_from is not None and a >= test_from:
            result.test_clips.append(record.key)


def write_reports(job: VideoJob, out: Path, cfg: PrepareConfig, report: dict, sheet: np.ndarray) -> None:
    """OUT/reports/<identity>__<stem>.json and .png (the contact sheet)."""
    reports = out / REPORTS_DIR
    reports.mkdir(parents=True, exist_ok=True)
    with atomic_path(reports / f"{job.identity}__{job.stem}.png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    write_json(reports / f"{job.identity}__{job.stem}.json", report)
