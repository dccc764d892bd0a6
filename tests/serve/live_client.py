"""A Python client of the live WebSocket protocol (apb2face.serve.live) and the mouth measure used on its frames."""

from __future__ import annotations

import json

import numpy as np

from apb2face.serve.live import unpack


def live_url(server_url: str) -> str:
    return server_url.replace("http://", "ws://") + "/v1/live"


def connect_when_free(url: str, timeout: float = 30.0, **kwargs: object):
    """Open a live session, waiting while the server still counts an earlier one that has just closed (503)."""
    import time

    import websockets.exceptions
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(url, open_timeout=60, max_size=None, **kwargs)
        except websockets.exceptions.InvalidStatus as exc:
            if exc.response.status_code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stream_audio(url: str, identity: str, pcm: np.ndarray, chunk: int = 640, **start: object):
    """Send 16 kHz float audio as PCM16 chunks then end; returns (ready, frames [(header, payload)], other, end)."""
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    with connect_when_free(url) as ws:
        ws.send(json.dumps({"identity": identity, "sample_rate": 16000, "idle": False, **start}))
        ready = json.loads(ws.recv(timeout=60))
        for lo in range(0, len(data), chunk):
            ws.send(data[lo : lo + chunk].tobytes())
        ws.send(json.dumps({"end": True}))
        frames, other, end = receive_until_end(ws)
    return ready, frames, other, end


def receive_until_end(ws) -> tuple[list[tuple[dict, bytes]], list, dict | None]:
    """Every message until the server closes: (frames [(header, payload)], the others (JSON ones as dicts, binary
    ones as (header, payload)), the end message or None)."""
    frames, other, end = [], [], None
    for message in ws:
        if isinstance(message, str):
            item = json.loads(message)
            if item["type"] == "end":
                end = item
            else:
                other.append(item)
        else:
            header, payload = unpack(message)
            (frames if header["type"] == "frame" else other).append((header, payload))
    return frames, other, end


def refused_start(url: str, start: str, timeout: float = 60.0) -> str:
    """The error a bad first message gets; the server must then close the session with 1008 (policy violation)."""
    import pytest
    import websockets.exceptions

    with connect_when_free(url) as ws:
        ws.send(start)
        error = json.loads(ws.recv(timeout=timeout))["error"]
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1008
    return error


def decode(payload: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def mouth_openings(images: list[np.ndarray]) -> np.ndarray:
    """Inner-lip gap / mouth width per frame from the face mesh (NaN without a face), small crops read at 2x."""
    from apb2face.data.face import FaceMesh, mouth_opening

    out = np.full(len(images), np.nan)
    with FaceMesh(video=True) as mesh:
        for i, image in enumerate(images):
            big = np.kron(image, np.ones((2, 2, 1), np.uint8)) if image.shape[0] < 256 else image
            points = mesh.detect(big)
            if points is not None:
                out[i] = mouth_opening(points)
    return out


def lipsync_r(images: list[np.ndarray], audio: np.ndarray) -> tuple[float | None, float]:
    """(Pearson r of mouth opening vs audio RMS per frame at the best lag within +-3 frames, face-found rate)."""
    from apb2face.data import audio as A
    from apb2face.evaluation.metrics import lipsync_correlation

    mouth = mouth_openings(images)
    rms = A.rms_per_frame(audio, len(images), 25.0)
    r, _lag = lipsync_correlation(mouth, rms, max_lag=3)
    return r, float(np.isfinite(mouth).mean())
