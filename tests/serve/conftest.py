"""A real `apb2face serve` process on a free loopback port, and clients for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inference.helpers import make_checkpoint

STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m apb2face serve` with the given arguments; `url` once `/healthz` answers."""

    def __init__(self, data_dir: Path, *args: str, token: str | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        import httpx

        command = [
            sys.executable,
            "-m",
            "apb2face",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.token:
            command += ["--token", self.token]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("APB2FACE_TOKEN", None)
        self.process = subprocess.Popen(
            command + self.args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", headers=headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def client(self, **kwargs: object):
        import httpx

        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def wait_for_job(client, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled"), timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/videos/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.fixture(scope="session")
def serve_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model: routes, jobs and limits do not need a trained face, and it renders fast."""
    return make_checkpoint(tmp_path_factory.mktemp("serve-ckpt") / "tiny")


LIMITS = ("--max-upload-mb", "1", "--max-audio-s", "8", "--max-image-pixels", "2000000", "--max-text-chars", "300")


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory, serve_checkpoint: Path) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("serve") / "data", "--checkpoint", str(serve_checkpoint), *LIMITS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo checkpoint (trained, built-in identities): live sessions whose mouths must follow the audio."""
    server = Server(tmp_path_factory.mktemp("serve-demo") / "data")
    server.start()
    yield server
    server.stop()
