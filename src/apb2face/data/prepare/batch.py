"""The batch: every job run (in parallel worker processes if asked), each failing alone, then the dataset finished:
eyes normalised per identity once every video is done, splits, dataset.json and reports/summary.json."""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.format import DatasetMeta, DatasetWriter
from apb2face.data.prepare.jobs import REPORTS_DIR, WORK_DIR, PrepareConfig, VideoJob, VideoResult
from apb2face.data.prepare.people import Listener, prepare_people_video
from apb2face.data.prepare.video import prepare_video
from apb2face.errors import UserError
from apb2face.io import atomic_path, write_json

log = logging.getLogger(__name__)


def run_one(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    progress: Callable[[int], None] | None,
    decode_threads: int = 0,
    listener: Listener | None = None,
) -> list[VideoResult]:
    """Run one job (one result, or one per person for a video with several), turning any failure into a one-line
    error naming the file (the batch goes on). `listener`: see people.prepare_people_video."""
    try:
        if job.scene:
            return prepare_people_video(job, out, cfg, progress, decode_threads, listener)
        return [prepare_video(job, out, cfg, progress, decode_threads)]
    except UserError as exc:
        return [VideoResult(job, error=str(exc))]
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 (an odd file must not stop the batch; the traceback goes to debug log)
        log.debug("%s", traceback.format_exc())
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return [VideoResult(job, error=f"{job.path}: failed ({type(exc).__name__}{': ' + detail if detail else ''})")]


def _pool_worker(
    job: VideoJob,
    out: str,
    cfg: PrepareConfig,
    queue,
    listener: Listener | None,  # noqa: ANN001
) -> list[VideoResult]:
    # K workers share the cores: one decoding thread each (FFmpeg's default is one per core)
    return run_one(job, Path(out), cfg, queue.put, decode_threads=1, listener=listener)


def _init_pool_worker() -> None:
    # K workers share the cores: no nested thread pools (OpenCV, FFmpeg frame threads)
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cv2.setNumThreads(1)


def run_jobs(
    jobs: list[VideoJob],
    out: Path,
    cfg: PrepareConfig,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    listener: Listener | None = None,
) -> list[VideoResult]:
    """Prepare every job, spread over `workers` processes; results in job order (a video with several people gives
    one result per person, left to right). `listener` (picklable when workers > 1) tells a video with several people
    what mouth the audio calls for (people.prepare_people_video)."""
    if workers <= 1 or len(jobs) <= 1:
        return [r for job in jobs for r in run_one(job, out, cfg, progress, listener=listener)]
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # mediapipe and FFmpeg hold threads: never fork them
    manager = ctx.Manager()
    q = manager.Queue()
    try:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_pool_worker
        ) as pool:
            futures = [pool.submit(_pool_worker, job, str(out), cfg, q, listener) for job in jobs]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2)
                while True:  # forward the workers' frame counts to the caller's progress bar
                    try:
                        count = q.get_nowait()
                    except queue_mod.Empty:
                        break
                    if progress is not None:
                        progress(count)
            return [r for f in futures for r in f.result()]
    finally:
        manager.shutdown()


def finalize_dataset(out: Path, results: list[VideoResult], cfg: PrepareConfig) -> dict:
    """Per-identity eye normalisation (and optional pitch reference), splits and dataset.json; returns a summary."""
    ok = [r for r in results if r.error is None]
    writer = DatasetWriter(
        out, image_size=cfg.size, sample_rate=cfg.sample_rate, fps=cfg.fps, source=_source_text(cfg)
    )
    by_identity: dict[str, list[VideoResult]] = {}
    for r in ok:
        by_identity.setdefault(r.job.identity, []).append(r)
    identity_facts = {}
    for identity, group in sorted(by_identity.items()):
        identity_facts[identity] = _normalise_identity(out, identity, group, cfg)
        for r in group:
            for record in r.records:
                writer.register(record)
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    if cfg.split == "time":
        test = sorted(k for r in ok for k in r.test_clips)
        train = sorted(c.key for c in writer.meta.clips if c.key not in set(test))
        meta = writer.finish(splits={"train": train, "test": test}, seed=cfg.seed)
    else:
        meta = writer.finish(test_fraction=cfg.test_fraction, seed=cfg.seed)
    summary = _summary(results, identity_facts, meta, cfg)
    write_json(out / REPORTS_DIR / "summary.json", summary)
    return summary


def _normalise_identity(out: Path, identity: str, group: list[VideoResult], cfg: PrepareConfig) -> dict:
    """Rewrite eyes.npy of every clip of one identity against the identity's open-eye EAR over all its videos (and
    pose.npy against its median pitch with pose_reference=identity-median); returns the identity's facts."""
    ears = np.concatenate([e for r in group for e in r.ears.values()])
    open_ref = np.nanpercentile(ears, cfg.eye_percentile, axis=0)
    pitch_ref = float(np.nanmedian(np.concatenate([p for r in group for p in r.pitch.values()])))
    for r in group:
        for name, ear in r.ears.items():
            clip_dir = out / "clips" / identity / name
            with atomic_path(clip_dir / "eyes.npy") as tmp:
                np.save(tmp, face.eye_openness(ear, open_ref).astype(np.float32), allow_pickle=False)
            if cfg.pose_reference == "identity-median":
                pose = np.load(clip_dir / "pose.npy")
                pose[:, 1] -= pitch_ref
                with atomic_path(clip_dir / "pose.npy") as tmp:
                    np.save(tmp, pose.astype(np.float32), allow_pickle=False)
    return {
        "eye_open_ear": [round(float(v), 4) for v in open_ref],
        "median_pitch": round(pitch_ref, 2),
        "videos": [r.job.stem for r in group],
    }


def _summary(results: list[VideoResult], identity_facts: dict, meta: DatasetMeta, cfg: PrepareConfig) -> dict:
    """The content of reports/summary.json (file names only: no paths of the machine it ran on)."""
    return {
        "videos": [_video_summary(r) for r in results],
        "identities": identity_facts,
        "splits": {k: len(v) for k, v in meta.splits.items()},
        "split_mode": cfg.split,
        "test_fraction": cfg.test_fraction,
        "seed": cfg.seed,
    }


def _video_summary(r: VideoResult) -> dict:
    name = Path(r.job.path).name
    if r.error is not None:
        return {"source": name, "identity": r.job.identity, "error": r.error.replace(r.job.path, name), "clips": 0}
    keys = ("frames", "frames_kept", "faces_missing", "offset", "face_size_px", "warnings")
    return {
        "source": name,
        "identity": r.job.identity,
        "error": None,
        **{k: r.report.get(k) for k in keys},
        "clips": len(r.records),
        **({"speaker_turns": r.report["speakers"]["turns"]} if "speakers" in r.report else {}),
    }


def _source_text(cfg: PrepareConfig) -> str:
    """The dataset's `source` field: how it was made and split."""
    split = (
        f"split by time: last {cfg.test_fraction:.0%} of each video is test"
        if cfg.split == "time"
        else f"split by clip, seeded ({cfg.test_fraction:.0%} test)"
    )
    return f"apb2face prepare: real videos, mediapipe face mesh, {split}"
