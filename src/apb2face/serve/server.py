"""Run the app under uvicorn. SIGTERM or Ctrl-C: stop accepting, close live sessions, let running jobs finish
(up to `drain_timeout_s`), then exit 0; queued jobs stay queued for the next start."""

from __future__ import annotations

import logging
import signal

from apb2face.serve.config import ServeConfig

log = logging.getLogger(__name__)


def serve(config: ServeConfig) -> None:
    import uvicorn

    from apb2face.serve.app import create_app

    config.make_dirs()
    app = create_app(config)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that was there before it started:
    # a no-op one, so that a drained server exits 0 (a second Ctrl-C during the drain still stops it at once)
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        ws_max_size=4 * 1024 * 1024,
        server_header=False,
    )
