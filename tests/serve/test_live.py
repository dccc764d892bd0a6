"""Live sessions over the WebSocket of a real server with the demo checkpoint: frames for audio as it comes, one per
40 ms, a mouth that follows the speech, spoken text, an idle face in silence, refusals beyond capacity."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from apb2face.data import audio as A
from tests.serve.conftest import Server
from tests.serve.live_client import (
    connect_when_free,
    decode,
    lipsync_r,
    live_url,
    mouth_openings,
    refused_start,
    stream_audio,
)


def speech(text: str) -> np.ndarray:
    from apb2face.serve.engine import _synthesize

    s = _synthesize()(text, voice="en-us")
    return A.resample(s.audio, s.sample_rate, A.SAMPLE_RATE)


def test_frames_follow_streamed_speech(demo_server: Server) -> None:
    audio = speech("Hello there, how are you doing today? I am fine.")
    ready, frames, other, end = stream_audio(live_url(demo_server.url), "id01", audio, chunk=320)
    assert ready["type"] == "ready" and ready["fps"] == 25 and ready["size"] == 128
    assert not other
    expected = A.num_video_frames(len(audio), 25.0)
    assert [h["index"] for h, _ in frames] == list(range(expected))  # one frame per 40 ms of audio, in order
    assert [h["t"] for h, _ in frames] == [round(i / 25, 4) for i in range(expected)]
    assert end["frames"] == expected and end["samples"] == len(audio)
    # each frame's place in the audio this client sent (16 kHz samples), its last one clipped to the audio
    assert [h["input_sample"] for h, _ in frames] == [min(640 * i, len(audio)) for i in range(expected)]
    latencies = np.array([h["latency_ms"] for h, _ in frames])
    assert (latencies > 0).all() and end["latency_p50_ms"] == pytest.approx(np.percentile(latencies, 50), abs=0.2)
    images = [decode(p) for _, p in frames]
    assert images[0].shape == (128, 128, 3)
    r, face_rate = lipsync_r(images, audio)
    print(f"live lip-sync r {r:.3f}, face found in {100 * face_rate:.0f}% of {len(images)} frames")
    assert face_rate > 0.9 and r is not None and r >= 0.3


def test_other_rates_png_and_errors(demo_server: Server) -> None:
    audio = speech("One two three.")
    audio48 = A.resample(audio, A.SAMPLE_RATE, 48000)
    _ready, frames, other, end = stream_audio(
        live_url(demo_server.url), "id00", audio48, chunk=960, sample_rate=48000, format="png"
    )
    assert not other and frames[0][1].startswith(b"\x89PNG")
    assert abs(end["samples"] - len(audio)) <= 32 and end["frames"] == len(frames)
    assert abs(len(frames) - A.num_video_frames(len(audio), 25.0)) <= 1
    for start, error in [
        ('{"identity": "nobody"}', "unknown identity"),
        ('{"identity": "id00", "sample_rate": 100}', "sample_rate"),
        ('{"identity": "id00", "format": "gif"}', "format"),
        ("[1, 2]", "JSON object"),
    ]:
        assert error in refused_start(live_url(demo_server.url), start)
    with connect_when_free(live_url(demo_server.url)) as ws:  # bad messages do not end the session
        ws.send('{"identity": "id00", "idle": false}')
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        ws.send(b"\x00\x01\x02")
        assert "even number" in json.loads(ws.recv(timeout=30))["error"]
        ws.send('{"say": "hi"}')
        assert "unknown message" in json.loads(ws.recv(timeout=30))["error"]
        ws.send('{"text": ""}')
        assert "non-empty" in json.loads(ws.recv(timeout=30))["error"]
        ws.send('{"end": true}')
        while isinstance(last := ws.recv(timeout=60), bytes):  # frames the end renders
            pass
        assert json.loads(last)["type"] == "end", last


def test_text_is_spoken_and_silence_idles(demo_server: Server) -> None:
    from apb2face.serve.live import unpack

    with connect_when_free(live_url(demo_server.url)) as ws:
        ws.send('{"identity": "id01"}')  # idle on: silence is fed while nothing arrives
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        idle = [unpack(ws.recv(timeout=60)) for _ in range(25)]
        assert [h["index"] for h, _ in idle] == list(range(25)) and all(h["type"] == "frame" for h, _ in idle)
        ws.send('{"text": "Good morning, everybody."}')
        audio_header = None
        frames = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            header, payload = unpack(ws.recv(timeout=60))
            if header["type"] == "audio":
                audio_header, pcm = header, np.frombuffer(payload, "<i2")
            elif audio_header is not None:
                frames.append((header, payload))
                if header["t"] > audio_header["sample"] / 16000 + len(pcm) / 16000 + 0.2:
                    break
        ws.send('{"end": true}')
    assert audio_header is not None and audio_header["sample_rate"] == 16000 and len(pcm) > 8000
    start, stop = audio_header["sample"] / 16000, audio_header["sample"] / 16000 + len(pcm) / 16000
    assert start >= 25 * 0.04  # the speech continues the stream after the idle frames
    assert all(h["input_sample"] is None for h, _ in idle + frames)  # none of it is the client's audio
    indices = [h["index"] for h, _ in frames]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # no frame lost or repeated
    # the idle face: mouth closed (less open than while speaking) and not a frozen picture (sway, blinks)
    quiet = [decode(p) for _, p in idle]
    speaking = [decode(p) for h, p in frames if start + 0.1 <= h["t"] <= stop - 0.1]
    quiet_mouth, speaking_mouth = mouth_openings(quiet), mouth_openings(speaking)
    motion = np.abs(quiet[-1].astype(np.float32) - quiet[0].astype(np.float32)).mean()
    print(
        f"idle mouth median {np.nanmedian(quiet_mouth):.3f} vs speaking p75 {np.nanpercentile(speaking_mouth, 75):.3f}"
        f"; idle frame change over 1 s {motion:.2f} grey levels"
    )
    assert np.nanmedian(quiet_mouth) < np.nanpercentile(speaking_mouth, 75)
    assert motion > 0.1


def test_sessions_beyond_capacity_get_503_with_retry_after(demo_server: Server) -> None:
    import websockets.exceptions
    from websockets.sync.client import connect

    with connect_when_free(live_url(demo_server.url)) as first:
        first.send('{"identity": "id00"}')
        assert json.loads(first.recv(timeout=60))["type"] == "ready"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            connect(live_url(demo_server.url), open_timeout=60)
        response = refused.value.response
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert "live session" in json.loads(bytes(response.body))["error"]
    with connect_when_free(live_url(demo_server.url)) as again:  # the slot is free once the first has closed
        again.send('{"identity": "id00"}')
        assert json.loads(again.recv(timeout=60))["type"] == "ready"


def test_cross_origin_pages_cannot_open_sessions(demo_server: Server) -> None:
    import websockets.exceptions
    from websockets.sync.client import connect

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        connect(live_url(demo_server.url), origin="http://evil.example", open_timeout=60)
    assert refused.value.response.status_code == 403
