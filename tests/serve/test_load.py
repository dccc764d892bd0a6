"""20 concurrent clients for 60 s against one server with the demo checkpoint (1 job worker, 1 live slot): 16 submit
text jobs and poll them, 4 keep trying to open live sessions and stream speech at the speed of speech.

Checked: no 5xx answer other than the documented 503 (+ Retry-After), no lost or duplicated job, every accepted
job finishes (done) once the load stops. Printed: p50/p95 latencies (HTTP requests, job turnaround, live frames),
as reported in docs/serve.md. Slow (about 3-5 minutes): RUN_SLOW=1.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter

import numpy as np
import pytest

from apb2face.data import audio as A
from tests.serve.conftest import Server, wait_for_job
from tests.serve.live_client import live_url

DURATION_S = 60.0
JOB_CLIENTS = 16
LIVE_CLIENTS = 4
SENTENCES = ["Hello there.", "How are you today?", "Good morning to you.", "See you soon.", "Thank you very much."]


class Record:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.bad: list[str] = []
        self.request_ms: list[float] = []
        self.turnaround_s: list[float] = []
        self.accepted: list[str] = []
        self.frame_ms: list[float] = []
        self.live_sessions = 0
        self.live_refused = 0

    def answer(self, response, started: float) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            self.request_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code >= 500 and not (response.status_code == 503 and "retry-after" in response.headers):
                self.bad.append(f"{response.status_code} {response.text[:200]}")


def job_client(server: Server, record: Record, stop: float, k: int) -> None:
    with server.client() as c:
        n = 0
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = c.post("/v1/videos", data={"identity": f"id0{k % 4}", "text": SENTENCES[(k + n) % len(SENTENCES)]})
            record.answer(r, t)
            n += 1
            if r.status_code == 503:
                time.sleep(float(r.headers["retry-after"]))
                continue
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            with record.lock:
                record.accepted.append(job_id)
            submitted = time.perf_counter()
            while True:  # poll until it finishes (past the end of the load: every accepted job must finish)
                t = time.perf_counter()
                status = c.get(f"/v1/videos/{job_id}")
                record.answer(status, t)
                if status.json()["state"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            with record.lock:
                record.turnaround_s.append(time.perf_counter() - submitted)


def live_client(server: Server, record: Record, stop: float, pcm: bytes) -> None:
    import websockets.exceptions
    from websockets.sync.client import connect

    from apb2face.serve.live import unpack

    while time.monotonic() < stop:
        try:
            ws = connect(live_url(server.url), open_timeout=60, max_size=None)
        except websockets.exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            with record.lock:
                record.statuses[f"ws {status}"] += 1
                record.live_refused += 1
                if status != 503 or "Retry-After" not in exc.response.headers:
                    record.bad.append(f"live {status}")
            time.sleep(1.0)
            continue
        with ws:
            ws.send(json.dumps({"identity": "id01", "sample_rate": 16000, "idle": False}))
            assert json.loads(ws.recv(timeout=60))["type"] == "ready"
            start = time.perf_counter()
            chunk = 640 * 2
            for i, lo in enumerate(range(0, len(pcm), chunk)):  # at the speed of speech, as a microphone would
                wait = start + (i + 1) * 0.04 - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                ws.send(pcm[lo : lo + chunk])
            ws.send(json.dumps({"end": True}))
            latencies = []
            for message in ws:
                if isinstance(message, bytes):
                    header, _ = unpack(message)
                    latencies.append(header["latency_ms"])
            with record.lock:
                record.statuses["ws 101"] += 1
                record.live_sessions += 1
                record.frame_ms += latencies


@pytest.mark.slow
def test_twenty_clients_for_a_minute(demo_server: Server) -> None:
    from apb2face.serve.engine import _synthesize

    speech = _synthesize()("Hello there, how are you doing today?", voice="en-us")
    audio = A.resample(speech.audio, speech.sample_rate, A.SAMPLE_RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    record = Record()
    stop = time.monotonic() + DURATION_S
    threads = [threading.Thread(target=job_client, args=(demo_server, record, stop, k)) for k in range(JOB_CLIENTS)]
    threads += [
        threading.Thread(target=live_client, args=(demo_server, record, stop, pcm)) for _ in range(LIVE_CLIENTS)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1800)
    assert not any(t.is_alive() for t in threads)
    wall = time.monotonic() - started

    with demo_server.client() as c:
        finals = {job_id: wait_for_job(c, job_id) for job_id in record.accepted}
    with sqlite3.connect(demo_server.data_dir / "jobs.sqlite3") as db:
        stored = [row[0] for row in db.execute("SELECT id FROM jobs")]
    q = lambda xs, p: float(np.percentile(xs, p)) if len(xs) else float("nan")  # noqa: E731
    print(
        f"\nload: {JOB_CLIENTS + LIVE_CLIENTS} clients for {DURATION_S:.0f} s (all done after {wall:.0f} s); "
        f"answers {dict(record.statuses)}\n"
        f"HTTP requests: {len(record.request_ms)}, p50 {q(record.request_ms, 50):.0f} ms, "
        f"p95 {q(record.request_ms, 95):.0f} ms\n"
        f"jobs accepted {len(record.accepted)}, done {sum(j['state'] == 'done' for j in finals.values())}; "
        f"turnaround p50 {q(record.turnaround_s, 50):.1f} s, p95 {q(record.turnaround_s, 95):.1f} s\n"
        f"live sessions {record.live_sessions} served, {record.live_refused} refused (503); frame latency "
        f"p50 {q(record.frame_ms, 50):.0f} ms, p95 {q(record.frame_ms, 95):.0f} ms over {len(record.frame_ms)} frames"
    )
    assert not record.bad, record.bad[:5]
    assert len(set(record.accepted)) == len(record.accepted)  # no duplicated job
    assert set(record.accepted) <= set(stored)  # no lost job
    assert all(j["state"] == "done" for j in finals.values()), [j for j in finals.values() if j["state"] != "done"]
    assert record.live_sessions >= 1 and record.live_refused >= 1
