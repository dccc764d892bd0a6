"""Run the app under uvicorn. SIGTERM or Ctrl-C: stop accepting, close live sessions, let running jobs finish
(up to `drain_timeout_s`), then exit 0; queued jobs stay queued for the next start."""

from __future__ import annotations

import logging
import signal

from apb2face.serve.config import ServeConfig

log = logging.getLogger(__name__)


class _DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio protocol logs this error after every refused WebSocket handshake (a 401/403/503
    denial response, which the app sends on purpose); the refusal itself is logged on its own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def serve(config: ServeConfig) -> None:
    import uvicorn

    from apb2face.serve.app import create_app

    config.make_dirs()
    app = create_app(config)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that was there before it started:
    # a no-op one, so that a drained server exits 0 (a second Ctrl-C during the drain still stops it at once)
    signal.signal(signal.SIGTERM, lambda *_: None)
    logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
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
