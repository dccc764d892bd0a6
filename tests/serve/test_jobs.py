"""The job store and worker pool on their own: order, no double hand-out, cancellation, recovery after a crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from apb2face.errors import UserError
from apb2face.serve.jobs import INTERRUPTED, Job, JobPool, JobStore


def add(store: JobStore, n: int, text: str = "hi") -> Job:
    return store.add(f"{n:032x}", "id00", False, False, text, "en-us", 0)


def wait_state(store: JobStore, job_id: str, state: str, timeout: float = 10.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job is not None and job.state == state:
            return job
        time.sleep(0.01)
    raise AssertionError(f"{job_id} is {store.get(job_id)}")


def test_claims_in_order_once_each_across_threads(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    ids = [add(store, i).id for i in range(60)]
    claimed: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        while (job := store.claim()) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids and len(set(claimed)) == len(ids)
    assert store.count("running") == 60 and store.count("queued") == 0


def test_recover_fails_running_jobs_and_keeps_queued_ones(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    running, queued = add(store, 1), add(store, 2)
    assert store.claim().id == running.id
    store.close()  # the process dies here
    again = JobStore(tmp_path / "jobs.sqlite3")
    assert again.recover() == [running.id]
    failed = again.get(running.id)
    assert failed.state == "failed" and failed.error == INTERRUPTED and failed.finished is not None
    assert again.get(queued.id).state == "queued"


def test_pool_renders_cancels_and_drains(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    started, release = threading.Event(), threading.Event()
    finals: list[Job] = []

    def render(job: Job, progress, check) -> int:
        if job.text == "bad":
            raise UserError("no face found in the image")
        if job.text == "boom":
            raise ZeroDivisionError("boom")
        for i in range(1000):
            started.set()
            if job.text == "slow":
                release.wait(0.01)
            check()
            progress((i + 1) / 1000, i + 1)
            if job.text != "slow" and i == 9:
                return 10
        return 1000

    pool = JobPool(store, render, workers=1, on_final=finals.append)
    slow = add(store, 1, "slow")
    pool.start()
    assert started.wait(5)
    wait_state(store, slow.id, "running")
    while store.get(slow.id).progress == 0:
        time.sleep(0.01)
    queued = add(store, 2, "quick")
    assert pool.cancel(queued.id) == "cancelled"  # still queued behind the slow one
    assert pool.cancel(slow.id) == "running"  # stops at its next check
    cancelled = wait_state(store, slow.id, "cancelled")
    assert 0 < cancelled.progress < 1
    bad, boom, good = add(store, 3, "bad"), add(store, 4, "boom"), add(store, 5, "quick")
    pool.notify()
    assert wait_state(store, good.id, "done").frames == 10
    assert store.get(bad.id).error.endswith("no face found in the image")
    assert store.get(boom.id).state == "failed" and "ZeroDivisionError" in store.get(boom.id).error
    assert pool.cancel(good.id) is None
    deadline = time.monotonic() + 5  # on_final runs just after the store says done: wait for it, not for luck
    while len(finals) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [j.id for j in finals] == [slow.id, bad.id, boom.id, good.id]
    # drain: a running job finishes, a queued one stays queued for the next start
    release.set()
    last = add(store, 6, "slow")
    pool.notify()
    wait_state(store, last.id, "running")
    waiting = add(store, 7, "quick")
    assert pool.stop(timeout=30)
    assert store.get(last.id).state == "done" and store.get(waiting.id).state == "queued"
