"""Run the app under uvicorn. SIGTERM or Ctrl-C: stop accepting, close live sessions, let running jobs finish
(up to `drain_timeout_s`), then exit 0; queued jobs stay queued for the next start."""

from __future__ import annotations

import logging

from apb2face.serve.config import ServeConfig

log = logging.getLogger(__name__)


def serve(config: ServeConfig) -> None:
    import uvicorn

    from apb2face.serve.app import create_app

    config.make_dirs()
    app = create_app(config)
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
