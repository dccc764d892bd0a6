"""Offline video jobs: a SQLite store (the jobs outlive the process) and a bounded pool of worker threads.

States: queued -> running -> done | failed | cancelled (queued -> cancelled too). On start, a job still marked
running was interrupted by the death of the previous server: it is reported failed, never left running.
Queued jobs are picked up in submission order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
INTERRUPTED = "the server stopped while this job was running; submit it again"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    identity TEXT,
    has_photo INTEGER NOT NULL DEFAULT 0,
    has_audio INTEGER NOT NULL DEFAULT 0,
    text TEXT,
    voice TEXT NOT NULL DEFAULT 'en-us',
    seed INTEGER NOT NULL DEFAULT 0,
    frames INTEGER,
    created REAL NOT NULL,
    started REAL,
    finished REAL
)
"""


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    progress: float
    error: str | None
    identity: str | None
    has_photo: bool
    has_audio: bool
    text: str | None
    voice: str
    seed: int
    frames: int | None
    created: float
    started: float | None
    finished: float | None

    def public(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("has_photo", "has_audio", "text", "voice")}
        out["reference"] = "photo" if self.has_photo else self.identity
        out["video"] = f"/v1/videos/{self.id}.mp4" if self.state == "done" else None
        return out


class Cancelled(Exception):
    """Raised inside a running job when it has been cancelled."""


class JobStore:
    """Thread-safe access to the jobs table (one connection, one lock: the writes are tiny)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> list[str]:
        """Mark jobs left running by a previous process as failed; returns their ids."""
        with self._lock:
            ids = [r["id"] for r in self._db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            self._db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE state = 'running'",
                (INTERRUPTED, time.time()),
            )
        return ids

    def add(
        self,
        job_id: str,
        identity: str | None,
        has_photo: bool,
        has_audio: bool,
        text: str | None,
        voice: str,
        seed: int,
    ) -> Job:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, state, identity, has_photo, has_audio, text, voice, seed, created) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, identity, int(has_photo), int(has_audio), text, voice, seed, time.time()),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def count(self, state: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0])

    def claim(self) -> Job | None:
        """The oldest queued job, now marked running (atomically: no job is handed out twice)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET state = 'running', started = ? WHERE id = ? AND state = 'queued'",
                (time.time(), row["id"]),
            )
        return self.get(row["id"])

    def progress(self, job_id: str, fraction: float, frames: int | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET progress = ?, frames = COALESCE(?, frames) WHERE id = ? AND state = 'running'",
                (round(float(fraction), 4), frames, job_id),
            )

    def finish(self, job_id: str, state: str, error: str | None = None, frames: int | None = None) -> None:
        assert state in FINAL
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE "
                "progress END, frames = COALESCE(?, frames) WHERE id = ? AND state IN ('queued', 'running')",
                (state, error, time.time(), state, frames, job_id),
            )

    def cancel_queued(self, job_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            )
        return cursor.rowcount == 1

    def delete(self, job_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE id = ? AND state IN ('done', 'failed', 'cancelled')", (job_id,)
            )
        return cursor.rowcount == 1


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        state=row["state"],
        progress=float(row["progress"]),
        error=row["error"],
        identity=row["identity"],
        has_photo=bool(row["has_photo"]),
        has_audio=bool(row["has_audio"]),
        text=row["text"],
        voice=row["voice"],
        seed=int(row["seed"]),
        frames=row["frames"],
        created=float(row["created"]),
        started=row["started"],
        finished=row["finished"],
    )


# a job's work: (job, a progress callback taking (fraction, frames), a cancellation check raising Cancelled)
Renderer = Callable[[Job, Callable[[float, int], None], Callable[[], None]], int]


class JobPool:
    """`workers` threads that render queued jobs one at a time each. `stop()` drains: running jobs finish, queued
    ones stay queued in the store for the next start."""

    def __init__(self, store: JobStore, render: Renderer, workers: int, on_final: Callable[[Job], None]) -> None:
        self.store = store
        self._render = render
        self._on_final = on_final
        self._wake = threading.Condition()
        self._stopping = False
        self._cancel: set[str] = set()
        self._running: set[str] = set()
        self._threads = [
            threading.Thread(target=self._loop, name=f"apb2face-job-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job: its state afterwards ('cancelled', or 'running' until the worker stops
        at its next batch), or None when it had already finished."""
        if self.store.cancel_queued(job_id):
            return "cancelled"
        with self._wake:
            if job_id in self._running:
                self._cancel.add(job_id)
                return "running"
        return None

    @property
    def running(self) -> int:
        with self._wake:
            return len(self._running)

    def stop(self, timeout: float) -> bool:
        """Take no new job; wait up to `timeout` s for running ones. True when every worker has finished."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _next(self) -> Job | None:
        with self._wake:
            while not self._stopping:
                job = self.store.claim()
                if job is not None:
                    self._running.add(job.id)
                    return job
                self._wake.wait(timeout=1.0)
        return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._run(job)
            finally:
                with self._wake:
                    self._running.discard(job.id)
                    self._cancel.discard(job.id)
            final = self.store.get(job.id)
            if final is not None:
                self._on_final(final)

    def _run(self, job: Job) -> None:
        from apb2face.errors import UserError

        def progress(fraction: float, frames: int) -> None:
            self.store.progress(job.id, fraction, frames)

        def check() -> None:
            with self._wake:
                if job.id in self._cancel:
                    raise Cancelled

        try:
            frames = self._render(job, progress, check)
        except Cancelled:
            self.store.finish(job.id, "cancelled")
        except UserError as exc:
            self.store.finish(job.id, "failed", error=str(exc))
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self.store.finish(job.id, "failed", error=f"internal error ({type(exc).__name__}: {exc})"[:300])
        else:
            self.store.finish(job.id, "done", frames=frames)


def iter_batches_with_progress(
    batches: Iterator, total: int, progress: Callable[[float, int], None], check: Callable[[], None]
) -> Iterator:
    """Frames of `batches` one by one; progress reported and cancellation checked between batches."""
    done = 0
    for frames, _landmarks in batches:
        check()
        yield from frames
        done += len(frames)
        progress(done / max(total, 1), done)
