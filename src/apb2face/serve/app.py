"""The HTTP and WebSocket routes of `apb2face serve`; `create_app(config)` builds the ASGI app.

Nothing a client sends names a file: job ids are UUIDs made here (checked against ^[0-9a-f]{32}$ before any
lookup), uploads are stored under `<id>.photo` / `<id>.audio` in the data folder, identities are looked up by name
in the checkpoint, and the page's files are a fixed folder of the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from apb2face import __version__
from apb2face.errors import UserError
from apb2face.serve import live as L
from apb2face.serve import live_scene as LS
from apb2face.serve.config import ServeConfig
from apb2face.serve.engine import Engine
from apb2face.serve.errors import ApiError, error_response, install_handlers
from apb2face.serve.jobs import FINAL, Job, JobPool, JobStore
from apb2face.serve.media import audio_duration, check_audio_type, check_photo
from apb2face.serve.middleware import COOKIE, BodyLimit, TokenAuth, presented_tokens
from apb2face.serve.render import make_renderer, remove_uploads, upload_path, video_path

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
VOICE = re.compile(r"^[A-Za-z0-9+-]{1,20}$")


class State:
    """What the routes share, made in the lifespan (the model loads before the first request is served)."""

    engine: Engine
    store: JobStore
    pool: JobPool
    capacity: L.LiveCapacity
    lock_file: Any


def create_app(config: ServeConfig, engine: Engine | None = None) -> Any:
    state = State()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        config.make_dirs()
        state.lock_file = _lock_data_dir(config)
        state.engine = engine or await run_in_threadpool(Engine, config.checkpoint, config.backend, config.threads)
        state.store = JobStore(config.database)
        for job_id in state.store.recover():
            log.warning("job %s was running when the server stopped: marked failed", job_id)
            remove_uploads(config, job_id)
        _remove_partial_videos(config)

        def on_final(job: Job) -> None:
            remove_uploads(config, job.id)

        state.pool = JobPool(state.store, make_renderer(state.engine, config), config.workers, on_final)
        state.capacity = L.LiveCapacity(config.max_live)
        state.pool.start()
        log.info("apb2face serve: %d identities, data in %s", len(state.engine.identities), config.data_dir)
        try:
            yield
        finally:
            log.info("draining: waiting for %d running job(s)", state.pool.running)
            drained = await run_in_threadpool(state.pool.stop, config.drain_timeout_s)
            if not drained:
                log.warning("jobs still running after %g s: they will be reported failed", config.drain_timeout_s)
            state.store.close()
            state.lock_file.close()

    app = FastAPIOffline(  # /docs with Swagger UI served from the package, not a CDN
        redoc_url=None,
        title="apb2face",
        version=__version__,
        description="Audio-driven talking faces: offline video jobs and live sessions (see docs/serve.md).",
        lifespan=lifespan,
    )
    install_handlers(app)

    def job_or_404(job_id: str) -> Job:
        job = state.store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise ApiError(404, "no such video job")
        return job

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict:
        return {
            "status": "ok",
            "identities": len(state.engine.identities),
            "jobs": {"queued": state.store.count("queued"), "running": state.pool.running},
            "live": {"active": state.capacity.active, "limit": state.capacity.limit},
        }

    @app.get("/v1/identities", tags=["identities"])
    def identities() -> dict:
        return {
            "identities": [{"name": n, "image": f"/v1/identities/{n}.png"} for n in state.engine.identities],
            "image_size": state.engine.image_size,
        }

    @app.get("/v1/identities/{name}.png", tags=["identities"], response_class=Response)
    def identity_image(name: str) -> Response:
        import cv2

        if name not in state.engine.identities:
            raise ApiError(404, "no such identity")
        image = state.engine.pipeline.references[name]
        ok, data = cv2.imencode(".png", cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR))
        return Response(data.tobytes(), media_type="image/png")

    @app.post("/v1/videos", status_code=202, tags=["videos"])
    async def create_video(
        identity: Annotated[str | None, Form(description="name of a built-in identity (or send photo)")] = None,
        photo: Annotated[UploadFile | None, File(description="a photo with one face (or send identity)")] = None,
        audio: Annotated[UploadFile | None, File(description="driving audio, any format FFmpeg reads")] = None,
        text: Annotated[str | None, Form(description="text to speak with espeak-ng (or send audio)")] = None,
        voice: Annotated[str, Form(description="espeak-ng voice for text")] = "en-us",
        seed: Annotated[int, Form(description="seed of the natural head motion and blinks")] = 0,
    ) -> JSONResponse:
        if (identity is None) == (photo is None):
            raise ApiError(422, "send exactly one of identity (a name) and photo (a file)")
        if (audio is None) == (text is None):
            raise ApiError(422, "send exactly one of audio (a file) and text")
        if identity is not None and identity not in state.engine.identities:
            raise ApiError(422, f"unknown identity {identity[:40]!r} (GET /v1/identities lists them)")
        if text is not None:
            if not text.strip():
                raise ApiError(422, "text is empty")
            if len(text) > config.max_text_chars:
                raise ApiError(413, f"text is longer than the limit of {config.max_text_chars} characters")
        if not VOICE.match(voice):
            raise ApiError(422, "voice must be an espeak-ng voice name like en-us or en-gb+f3")
        if not -(2**31) <= seed < 2**31:
            raise ApiError(422, "seed must fit in 32 bits")
        if state.store.count("queued") >= config.max_queued:
            raise ApiError(503, "the job queue is full; try again later", {"Retry-After": str(config.retry_after_s)})
        job_id = uuid.uuid4().hex
        try:
            if photo is not None:
                data = await photo.read()
                await run_in_threadpool(check_photo, data, config.max_image_pixels)
                await run_in_threadpool(upload_path(config, job_id, "photo").write_bytes, data)
            if audio is not None:
                data = await audio.read()
                check_audio_type(audio.content_type, data[:16])
                path = upload_path(config, job_id, "audio")
                await run_in_threadpool(path.write_bytes, data)
                await run_in_threadpool(audio_duration, path, config.max_audio_s)
            job = state.store.add(job_id, identity, photo is not None, audio is not None, text, voice, seed)
        except BaseException:
            remove_uploads(config, job_id)
            raise
        state.pool.notify()
        return JSONResponse(job.public(), status_code=202, headers={"Location": f"/v1/videos/{job.id}"})

    @app.get("/v1/videos/{job_id}.mp4", tags=["videos"], response_class=FileResponse)
    def video_file(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        path = video_path(config, job.id)
        if job.state != "done" or not path.is_file():
            raise ApiError(409, f"the video is not ready (state: {job.state})")
        return FileResponse(path, media_type="video/mp4", filename=f"{job.id}.mp4", content_disposition_type="inline")

    @app.get("/v1/videos/{job_id}", tags=["videos"])
    def video_status(job_id: str) -> dict:
        return job_or_404(job_id).public()

    @app.delete("/v1/videos/{job_id}", tags=["videos"])
    def delete_video(job_id: str) -> dict:
        """Cancel a queued or running job; for a finished one, delete its video and its record."""
        job = job_or_404(job_id)
        if job.state not in FINAL:
            after = state.pool.cancel(job.id)
            if after is not None:
                return {"id": job.id, "state": after}
            job = job_or_404(job_id)
        video_path(config, job.id).unlink(missing_ok=True)
        remove_uploads(config, job.id)
        state.store.delete(job.id)
        return {"id": job.id, "state": "deleted"}

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        await live_session(websocket, state, config)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        response = HTMLResponse((STATIC / "index.html").read_text())
        tokens = presented_tokens(request.scope)
        if config.token is not None and tokens:  # TokenAuth let the request in: one of them is the right one
            response.set_cookie(COOKIE, config.token, httponly=True, samesite="strict")
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return TokenAuth(BodyLimit(app, config.max_upload_bytes), config.token)


async def live_session(websocket: WebSocket, state: State, config: ServeConfig) -> None:
    if not _same_origin(websocket):
        await websocket.send_denial_response(error_response(403, "cross-origin WebSocket refused"))
        return
    if not state.capacity.acquire():
        await websocket.send_denial_response(
            error_response(
                503,
                f"all {config.max_live} live session(s) are in use; try again later",
                {"Retry-After": str(config.retry_after_s)},
            )
        )
        return
    worker = None
    try:
        await websocket.accept()
        try:
            worker, ready = await _start_worker(json.loads(await websocket.receive_text()), state, config)
        except (UserError, ValueError, KeyError) as exc:
            await websocket.send_text(json.dumps({"type": "error", "error": str(exc)}))
            await websocket.close(1008)
            return
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue = asyncio.Queue()
        worker.emit = lambda item: loop.call_soon_threadsafe(outbox.put_nowait, item)
        await websocket.send_text(json.dumps(ready))
        worker.start()
        latencies: list[float] = []
        sender = asyncio.create_task(L.pump(websocket, outbox, worker.options.format, latencies))
        receiver = asyncio.create_task(_receive(websocket, worker))
        done, _pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if receiver in done and receiver.result():  # the client sent end: the worker sends what is left
            await asyncio.wait({sender})
        if sender.done():  # the worker ended (after end, or on an error)
            receiver.cancel()
            with contextlib.suppress(Exception):
                await websocket.close(1000)
        else:  # the client went away
            worker.stop()
            sender.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    except WebSocketDisconnect:
        pass
    finally:
        if worker is not None:
            worker.stop()
            await run_in_threadpool(worker.join, 5.0)
        state.capacity.release()


async def _start_worker(start: Any, state: State, config: ServeConfig) -> tuple[Any, dict]:
    """The worker of a new session and its ready message: a scene session when the first message has "scene", else
    one face (live.py)."""
    if isinstance(start, dict) and "scene" in start:
        scene = await run_in_threadpool(LS.parse_scene_start, start, config)
        worker = await run_in_threadpool(LS.LiveSceneWorker, state.engine, config, scene, lambda _item: None)
        return worker, worker.ready_message()
    options = L.parse_start(start, state.engine.identities)
    worker = await run_in_threadpool(L.LiveWorker, state.engine, config, options, lambda _item: None)
    ready = {
        "type": "ready",
        "identity": options.identity,
        "fps": 25,
        "size": state.engine.image_size,
        "sample_rate": L.RATE,
        "lookahead_ms": round(worker.lookahead_ms, 1),
    }
    return worker, ready


async def _receive(websocket: WebSocket, worker: L.SessionWorker) -> bool:
    """Client messages into the worker's queue until the client leaves (False) or sends end (True)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return False
        try:
            if message.get("bytes") is not None:
                worker.pcm(message["bytes"])
                continue
            data = json.loads(message.get("text") or "null")
            if not isinstance(data, dict):
                raise UserError("messages must be JSON objects or binary PCM16")
            if data.get("end"):
                worker.end()
                return True
            if "text" in data:
                worker.text(data["text"], data.get("voice", "en-us"))
            else:
                raise UserError('unknown message (expected binary PCM16, {"text": ...} or {"end": true})')
        except (UserError, ValueError) as exc:
            await websocket.send_text(json.dumps({"type": "error", "error": str(exc)}))


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers send Origin: only the page this server serves may open live sessions (other clients send none)."""
    origin = websocket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == websocket.headers.get("host")


def _lock_data_dir(config: ServeConfig) -> Any:
    handle = open(config.data_dir / "server.lock", "w")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError("another apb2face serve uses this data folder", config.data_dir) from None
    return handle


def _remove_partial_videos(config: ServeConfig) -> None:
    """Temporary files of videos being written when a previous server was killed (atomic_path names: .<stem>.*)."""
    for path in config.videos.glob(".*"):
        path.unlink(missing_ok=True)
