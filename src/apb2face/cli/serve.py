"""Serve a web page and an HTTP API: offline video jobs (identity or photo + audio or text -> MP4) and live
sessions (microphone PCM or text over a WebSocket -> frames as they are rendered).

Binds 127.0.0.1 by default; any other --host needs --token (then every request carries `Authorization: Bearer
TOKEN`, or opens the page once as /?token=TOKEN). Jobs, uploads and videos live in --data-dir only. See
docs/serve.md for the routes, the live protocol and the limits.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from apb2face.cli.common import add_checkpoint_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from apb2face.serve.config import MIB, ServeConfig

    d = ServeConfig.__dataclass_fields__
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    add_checkpoint_argument(parser)
    parser.add_argument(
        "--backend", choices=("torch", "onnx"), default="torch", help="inference backend (default: torch)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("serve-data"),
        help="jobs database, uploads, videos (default: serve-data)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("APB2FACE_TOKEN"),
        help="bearer token every request must carry (default: $APB2FACE_TOKEN; required off loopback)",
    )
    limits = parser.add_argument_group("capacity and limits")
    limits.add_argument(
        "--workers",
        type=int,
        default=d["workers"].default,
        help="offline jobs rendered at once (default: %(default)s)",
    )
    limits.add_argument(
        "--threads", type=int, default=d["threads"].default, help="torch threads (default: %(default)s)"
    )
    limits.add_argument(
        "--max-live", type=int, default=d["max_live"].default, help="live sessions at once (default: %(default)s)"
    )
    limits.add_argument(
        "--max-queued", type=int, default=d["max_queued"].default, help="jobs waiting at once (default: %(default)s)"
    )
    limits.add_argument(
        "--max-upload-mb",
        type=float,
        default=d["max_upload_bytes"].default / MIB,
        help="request body limit in MiB (default: %(default)s)",
    )
    limits.add_argument(
        "--max-audio-s",
        type=float,
        default=d["max_audio_s"].default,
        help="audio length limit in seconds (default: %(default)s)",
    )
    limits.add_argument(
        "--max-image-pixels",
        type=int,
        default=d["max_image_pixels"].default,
        help="photo width x height limit (default: %(default)s)",
    )
    limits.add_argument(
        "--max-text-chars",
        type=int,
        default=d["max_text_chars"].default,
        help="text length limit (default: %(default)s)",
    )
    limits.add_argument(
        "--drain-timeout-s",
        type=float,
        default=d["drain_timeout_s"].default,
        help="on SIGTERM, seconds running jobs may take to finish (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from apb2face.serve.config import MIB, ServeConfig
    from apb2face.serve.server import serve

    config = ServeConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        checkpoint=args.checkpoint,
        backend=args.backend,
        token=args.token or None,
        workers=args.workers,
        threads=args.threads,
        max_live=args.max_live,
        max_queued=args.max_queued,
        max_upload_bytes=int(args.max_upload_mb * MIB),
        max_audio_s=args.max_audio_s,
        max_image_pixels=args.max_image_pixels,
        max_text_chars=args.max_text_chars,
        drain_timeout_s=args.drain_timeout_s,
    )
    serve(config)
    return 0
