"""Live scene sessions over the WebSocket of a real server (uvicorn on a free port, the tiny random model): two
people in one picture, one audio stream per speaker tagged in binary messages, full scene frames out in order; bad
messages get a JSON error."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from apb2face.data import audio as A
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.scene import SceneConfig, SceneStreamingSession, track_image
from apb2face.serve.live import pack
from tests.inference.helpers import noise_speech, two_person_scene
from tests.serve.conftest import Server
from tests.serve.live_client import connect_when_free, decode, live_url, receive_until_end, refused_start

SPEAKERS = ["astronaut", "mirrored"]  # the tiny checkpoint's identities, given the faces left to right


def scene_b64() -> str:
    ok, png = cv2.imencode(".png", cv2.cvtColor(two_person_scene(), cv2.COLOR_RGB2BGR))
    assert ok
    return base64.b64encode(png.tobytes()).decode()


def start_message(**overrides: object) -> str:
    start = {"scene": scene_b64(), "speakers": SPEAKERS, "assign": "left-to-right", "format": "png", "idle": False}
    return json.dumps({**start, **overrides})


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def test_a_scene_streams_one_audio_per_speaker(api_server: Server, serve_checkpoint) -> None:
    voices = {"astronaut": noise_speech(0.6, seed=1), "mirrored": noise_speech(0.4, seed=2)}
    with connect_when_free(live_url(api_server.url)) as ws:
        ws.send(start_message())
        ready = json.loads(ws.recv(timeout=120))
        assert ready["type"] == "ready" and ready["scene"] and (ready["width"], ready["height"]) == (320, 160)
        assert ready["faces"] == [
            {"index": 0, "identity": "astronaut", "speaker": "astronaut"},
            {"index": 1, "identity": "mirrored", "speaker": "mirrored"},
        ]
        for lo in range(0, 16000, 800):  # the two streams take turns, each in its own chunk size
            for name, size in (("astronaut", 800), ("mirrored", 560)):
                chunk = voices[name][lo * size // 800 : (lo + 800) * size // 800]
                if len(chunk):
                    ws.send(pack({"speaker": name}, pcm16(chunk)))
        ws.send(json.dumps({"end": True}))
        frames, other, end = receive_until_end(ws)
    assert not other
    expected = A.num_video_frames(len(voices["astronaut"]), 25.0)  # the longer stream; the other padded
    assert [h["index"] for h, _ in frames] == list(range(expected)) and end["frames"] == expected
    assert [h["t"] for h, _ in frames] == [round(k / 25, 4) for k in range(expected)]
    assert end["samples"] == {"astronaut": 9600, "mirrored": 9600}  # 6400 of mirrored's own, the rest silence
    # where each frame sits in each speaker's own audio (null: silence added at the end)
    assert frames[5][0]["input_sample"] == {"astronaut": 3200, "mirrored": 3200}
    assert frames[-1][0]["input_sample"]["mirrored"] is None
    images = np.stack([decode(payload) for _, payload in frames])
    assert images.shape == (expected, 160, 320, 3)
    # the same frames as the Python API gives for the same streams (PNG is lossless)
    pipe = APB2FacePipeline.from_pretrained(serve_checkpoint)
    config = SceneConfig(assign="left-to-right")
    with SceneStreamingSession(pipe, track_image(two_person_scene(), config), SPEAKERS, config) as session:
        local = [f for name in SPEAKERS for f in session.push(name, pcm16_float(voices[name]))] + session.finish()
    np.testing.assert_array_equal(images, np.stack([f.image for f in local]))


def pcm16_float(audio: np.ndarray) -> np.ndarray:
    """What the server receives: the audio quantised to PCM16."""
    return np.frombuffer(pcm16(audio), "<i2").astype(np.float32) / 32768.0


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"speakers": ["astronaut", "nobody"]}, "speaker nobody is not an identity"),
        ({"speakers": []}, "speakers must be a list"),
        ({"scene": "not base64!"}, "scene is not valid base64"),
        ({"scene": base64.b64encode(b"GIF89a....").decode()}, "scene: photo must be a PNG"),
        ({"assign": "random"}, "assign must be one of"),
        ({"speakers": SPEAKERS * 2}, "speaker astronaut is given twice"),
    ],
)
def test_bad_scene_starts_get_one_json_error(api_server: Server, overrides: dict, error: str) -> None:
    assert error in refused_start(live_url(api_server.url), start_message(**overrides), timeout=120)


def test_bad_messages_do_not_end_a_scene_session(api_server: Server) -> None:
    with connect_when_free(live_url(api_server.url)) as ws:
        ws.send(start_message())
        assert json.loads(ws.recv(timeout=120))["type"] == "ready"
        for message, error in [
            (pcm16(np.zeros(320)), "binary messages of a scene session"),  # untagged PCM
            (pack({"speaker": "nobody"}, pcm16(np.zeros(320))), "unknown speaker 'nobody'"),
            (pack({"speaker": "astronaut"}, b"\x00\x01\x02"), "even number"),
            (json.dumps({"text": "hello"}), "not text"),
            (json.dumps({"say": "hi"}), "unknown message"),
        ]:
            ws.send(message)
            assert error in json.loads(ws.recv(timeout=30))["error"]
        ws.send(pack({"speaker": "astronaut"}, pcm16(noise_speech(0.2))))
        ws.send(json.dumps({"end": True}))
        frames, other, end = receive_until_end(ws)
    assert not other and end["frames"] == len(frames) == 5
