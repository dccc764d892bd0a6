"""A server's life: refusing an exposed bind without a token, the token on every route, a full queue, a crash
(running jobs reported failed, queued ones kept), and SIGTERM (running jobs finish, the process exits 0)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from apb2face.cli.main import main
from apb2face.errors import UserError
from apb2face.serve.config import ServeConfig
from apb2face.serve.jobs import INTERRUPTED
from tests.serve.conftest import LIMITS, Server, wait_for_job
from tests.serve.live_client import live_url

TOKEN = "a-long-enough-test-token-1234"
LONG_TEXT = "This sentence keeps the only worker busy for a few seconds, while the others wait in the queue."


def test_config_refuses_exposed_hosts_without_a_token(tmp_path: Path) -> None:
    ServeConfig(data_dir=tmp_path, host="127.0.0.1")
    ServeConfig(data_dir=tmp_path, host="::1")
    ServeConfig(data_dir=tmp_path, host="0.0.0.0", token=TOKEN)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        with pytest.raises(UserError, match="pass --token"):
            ServeConfig(data_dir=tmp_path, host=host)
    with pytest.raises(UserError, match="at least 16"):
        ServeConfig(data_dir=tmp_path, token="short")
    with pytest.raises(UserError, match="workers must be positive"):
        ServeConfig(data_dir=tmp_path, workers=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        ServeConfig(data_dir=tmp_path / "file")


def test_cli_refuses_exposed_host_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d"), "--token", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pass --token" in err
    assert not (tmp_path / "d").exists()


def test_token_on_every_route(tmp_path: Path, serve_checkpoint: Path) -> None:
    import websockets.exceptions
    from websockets.sync.client import connect

    server = Server(tmp_path / "data", "--checkpoint", str(serve_checkpoint), token=TOKEN).start()
    try:
        with server.client() as c:
            for path in (
                "/healthz",
                "/v1/identities",
                "/",
                "/docs",
                "/openapi.json",
                "/static/app.js",
                "/v1/videos/x",
            ):
                r = c.get(path)
                assert r.status_code == 401 and r.json()["error"] == "missing or wrong bearer token", path
            assert c.post("/v1/videos", data={"identity": "astronaut", "text": "Hi."}).status_code == 401
            assert c.get("/healthz", headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
            assert c.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            page = c.get(f"/?token={TOKEN}")  # the page sets a cookie so that its own requests carry the token
            assert page.status_code == 200 and "apb2face_token" in page.headers["set-cookie"]
            assert c.get("/v1/identities").status_code == 200  # the client kept the cookie
        ws = live_url(server.url)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            connect(ws, open_timeout=30)
        assert refused.value.response.status_code == 401
        with connect(ws, additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=30) as live:
            live.send('{"identity": "astronaut"}')
            assert '"ready"' in live.recv(timeout=60)
    finally:
        assert server.stop() == 0


def test_full_queue_503_crash_recovery_and_sigterm_drain(tmp_path: Path, serve_checkpoint: Path) -> None:
    data = tmp_path / "data"
    args = ("--checkpoint", str(serve_checkpoint), "--max-queued", "1", *LIMITS)
    server = Server(data, *args).start()
    with server.client() as c:
        running = c.post("/v1/videos", data={"identity": "astronaut", "text": LONG_TEXT}).json()
        wait_for_job(c, running["id"], ("running",))
        queued = c.post("/v1/videos", data={"identity": "mirrored", "text": "Hi."}).json()
        full = c.post("/v1/videos", data={"identity": "mirrored", "text": "Hi."})
        assert (
            full.status_code == 503 and full.headers["retry-after"] == "5" and "queue is full" in full.json()["error"]
        )
        assert c.get(f"/v1/videos/{queued['id']}").json()["state"] == "queued"
    server.stop(signal.SIGKILL)  # a crash while a job runs

    restarted = Server(data, *args)
    restarted.port = server.port
    restarted.url = server.url
    restarted.start()
    with restarted.client() as c:
        crashed = c.get(f"/v1/videos/{running['id']}").json()
        assert crashed["state"] == "failed" and crashed["error"] == INTERRUPTED
        assert wait_for_job(c, queued["id"])["state"] == "done"  # the queued job survived the crash
        # SIGTERM while a job runs: it finishes, then the process exits cleanly
        draining = c.post("/v1/videos", data={"identity": "astronaut", "text": LONG_TEXT}).json()
        wait_for_job(c, draining["id"], ("running",))
        waiting = c.post("/v1/videos", data={"identity": "mirrored", "text": "Hi."}).json()
    started = time.monotonic()
    assert restarted.stop(signal.SIGTERM) == 0
    print(f"SIGTERM drain took {time.monotonic() - started:.1f} s")
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        states = dict(db.execute("SELECT id, state FROM jobs").fetchall())
    assert states[draining["id"]] == "done" and (data / "videos" / f"{draining['id']}.mp4").is_file()
    assert states[waiting["id"]] in ("queued", "done")  # never lost: left queued for the next start (or done)
    assert not list(data.glob("videos/.*")), "no partial video left behind"
