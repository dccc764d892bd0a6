"""ServeConfig: where the server listens, what it loads and every limit it enforces, checked in one place."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from apb2face.errors import UserError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path  # SQLite database, uploads and finished videos live here and nowhere else
    host: str = "127.0.0.1"
    port: int = 8000
    checkpoint: Path | None = None  # None: the demo checkpoint shipped in the package
    backend: str = "torch"
    token: str | None = None  # bearer token required on every route when set
    workers: int = 1  # offline jobs rendered at once (each uses `threads` cores)
    threads: int = 1  # torch intra-op threads of the whole process
    max_live: int = 1  # live sessions at once; one more is refused with 503 + Retry-After
    max_queued: int = 100  # queued jobs; one more is refused with 503 + Retry-After
    max_upload_bytes: int = 20 * MIB  # request body of POST /v1/videos (413 beyond)
    max_audio_s: float = 60.0  # driving audio, uploaded or spoken from text (413 beyond)
    max_image_pixels: int = 4096 * 4096  # photo width x height, read from the header before decoding (413 beyond)
    max_text_chars: int = 1000  # text to speak (413 beyond)
    live_idle_ms: int = 200  # live: after this long without audio the face is fed silence (idle face)
    jpeg_quality: int = 90
    retry_after_s: int = 5  # Retry-After header of 503 answers
    drain_timeout_s: float = 120.0  # SIGTERM: how long running jobs may take to finish before the server exits

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        self.validate()

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be between 0 and 65535, got {self.port}")
        if self.backend not in ("torch", "onnx"):
            raise UserError(f"--backend must be torch or onnx, got {self.backend!r}")
        if self.token is not None and len(self.token) < 16:
            raise UserError("--token must be at least 16 characters")
        if not is_loopback(self.host) and self.token is None:
            raise UserError(
                f"--host {self.host} is reachable from other machines: pass --token (a bearer token every request "
                "must carry) or bind 127.0.0.1"
            )
        positive = {
            "workers": self.workers,
            "threads": self.threads,
            "max-queued": self.max_queued,
            "max-upload-mb": self.max_upload_bytes,
            "max-audio-s": self.max_audio_s,
            "max-image-pixels": self.max_image_pixels,
            "max-text-chars": self.max_text_chars,
            "live-idle-ms": self.live_idle_ms,
            "retry-after-s": self.retry_after_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"--{name} must be positive, got {value}")
        if self.max_live < 0:
            raise UserError(f"--max-live must be 0 (no live sessions) or more, got {self.max_live}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"--jpeg-quality must be between 1 and 100, got {self.jpeg_quality}")
        if self.drain_timeout_s < 0:
            raise UserError(f"--drain-timeout-s must be 0 or more, got {self.drain_timeout_s}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise UserError("data folder exists and is not a directory", self.data_dir)

    @property
    def database(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def uploads(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def videos(self) -> Path:
        return self.data_dir / "videos"

    def make_dirs(self) -> None:
        for folder in (self.data_dir, self.uploads, self.videos):
            folder.mkdir(parents=True, exist_ok=True)
        if not os.access(self.data_dir, os.W_OK):
            raise UserError("data folder is not writable", self.data_dir)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
