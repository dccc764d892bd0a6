"""Live scene sessions over the same WebSocket: one picture with several people, one audio stream per speaker, full
scene frames out (every face pasted back, the faces with no speaker listening). See docs/serve.md.

client -> server
    first   {"scene": BASE64 of a PNG/JPEG/WebP/BMP still, "speakers": [NAME, ...], "assign": "identity",
             "sample_rate": 16000, "format": "jpeg"|"png", "idle": true}
    then    binary pack({"speaker": NAME}, PCM16 little-endian mono at sample_rate): that speaker's next chunk
            {"end": true}                        every stream padded with silence to the longest, the rest rendered
server -> client
    {"type": "ready", "scene": true, "fps", "width", "height", "sample_rate": 16000, "lookahead_ms", "speakers",
     "faces": [{"index", "identity", "speaker"}]}
    binary  pack({"type": "frame", "index", "t", "latency_ms", "format", "input_sample": {NAME: sample}}, image)
    {"type": "error", "error": message}
    {"type": "end", "frames", "samples": {NAME: n}, "latency_p50_ms", "latency_p95_ms"}

A scene frame needs every speaker's audio up to its time (plus the look-ahead). With "idle", a speaker who has sent
nothing for `live_idle_ms` while another is ahead is filled with silence up to the furthest stream, and once no
audio at all has come for `live_idle_ms` every stream gets that much silence (the faces idle); without it, stream
time advances only with the audio each speaker sends. A frame's latency counts from when the last of its speakers'
audio arrived; `input_sample` places it in each speaker's own audio (null where that was silence the server added).
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from apb2face.errors import UserError
from apb2face.inference.scene.render import ASSIGN, SceneConfig
from apb2face.serve.config import ServeConfig
from apb2face.serve.engine import Engine
from apb2face.serve.errors import ApiError
from apb2face.serve.live import (
    RATE,
    ArrivalClock,
    SessionWorker,
    decode_pcm16,
    encode_image,
    parse_stream_options,
    unpack,
)
from apb2face.serve.media import check_photo

MAX_SPEAKERS = 16  # a scene's face mesh looks for at most this many faces


@dataclass(frozen=True)
class SceneOptions:
    scene: np.ndarray  # (H, W, 3) uint8 RGB
    speakers: tuple[str, ...]
    assign: str
    sample_rate: int
    format: str
    idle: bool


def parse_scene_start(message: dict, config: ServeConfig) -> SceneOptions:
    """The first message of a scene session; UserError with a message for the client when it is not acceptable."""
    encoded = message.get("scene")
    if not isinstance(encoded, str) or not encoded:
        raise UserError("scene must be a base64-encoded PNG, JPEG, WebP or BMP image")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("scene is not valid base64") from None
    try:
        pixels = check_photo(data, config.max_image_pixels)
    except ApiError as exc:
        raise UserError(f"scene: {exc.message}") from None
    speakers = message.get("speakers")
    if (
        not isinstance(speakers, list)
        or not 1 <= len(speakers) <= MAX_SPEAKERS
        or not all(isinstance(name, str) and 0 < len(name) <= 64 for name in speakers)
    ):
        raise UserError(f"speakers must be a list of 1 to {MAX_SPEAKERS} identity names")
    assign = message.get("assign", "identity")
    if assign not in ASSIGN:
        raise UserError(f"assign must be one of {', '.join(ASSIGN)}")
    rate, fmt, idle = parse_stream_options(message)
    return SceneOptions(pixels, tuple(speakers), assign, rate, fmt, idle)


class Speaker:
    """One speaker's stream as the server sees it: resampled to 16 kHz, when each part arrived, and how much of it
    was the client's own audio."""

    def __init__(self, sample_rate: int) -> None:
        self.clock = ArrivalClock()
        self.input_samples = 0  # of the client's audio, at 16 kHz
        self.last_arrival = time.perf_counter()  # of this speaker's own audio (the session start before any)
        self._resampler = None
        if sample_rate != RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, RATE, 1, dtype="float32")

    def resample(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        if self._resampler is None:
            return pcm
        return self._resampler.resample_chunk(pcm, last=last)


class LiveSceneWorker(SessionWorker):
    """The rendering thread of one scene session (the counterpart of `live.LiveWorker`: the same interface for the
    app, with one tagged audio stream per speaker and no text)."""

    thread_name = "apb2face-live-scene"
    what = "live scene session"

    def __init__(
        self, engine: Engine, config: ServeConfig, options: SceneOptions, emit: Callable[[Any], None]
    ) -> None:
        scene = SceneConfig(assign=options.assign)
        session = engine.scene_session(options.scene, options.speakers, scene, realtime=True)
        super().__init__(config, options, emit, session)
        self.speakers = {name: Speaker(options.sample_rate) for name in options.speakers}

    def ready_message(self) -> dict:
        height, width = self.session.shape
        faces = [{"index": f.index, "identity": f.identity, "speaker": f.speaker} for f in self.session.faces]
        return {
            "type": "ready",
            "scene": True,
            "fps": self.session.fps,
            "width": width,
            "height": height,
            "sample_rate": RATE,
            "lookahead_ms": round(self.lookahead_ms, 1),
            "speakers": list(self.options.speakers),
            "faces": faces,
        }

    # called from the event loop
    def pcm(self, data: bytes) -> None:
        try:
            header, payload = unpack(data)
        except (struct.error, ValueError):
            raise UserError('binary messages of a scene session are pack({"speaker": NAME}, PCM16)') from None
        name = header.get("speaker") if isinstance(header, dict) else None
        if name not in self.speakers:
            raise UserError(f"unknown speaker {str(name)[:40]!r} (speakers: {', '.join(self.options.speakers)})")
        self.inputs.put(("pcm", name, decode_pcm16(payload, self.options.sample_rate), time.perf_counter()))

    def text(self, _text: Any, _voice: Any) -> None:
        raise UserError("a scene session takes each speaker's audio, not text")

    # the thread
    def _take(self, item: tuple) -> None:
        _, name, pcm, arrived = item
        speaker = self.speakers[name]
        speaker.last_arrival = arrived
        self._push(name, speaker.resample(pcm), arrived, from_client=True)
        if self.options.idle:  # speakers silent for a while do not hold the others back
            now = time.perf_counter()
            idle_s = self.config.live_idle_ms / 1000
            self._fill([n for n, s in self.speakers.items() if now - s.last_arrival > idle_s])

    def _idle(self, seconds: float) -> None:  # nobody speaks: every face idles
        self._fill(list(self.speakers))
        for name in self.speakers:
            self._push(name, np.zeros(int(RATE * seconds), np.float32), time.perf_counter())

    def _finish(self) -> None:
        for name, speaker in self.speakers.items():  # the resamplers' last samples
            self._push(name, speaker.resample(np.zeros(0, np.float32), last=True), time.perf_counter(), True)
        self._fill(list(self.speakers))  # streams that ended early: silence (as finish() pads them)
        self._send(self.session.finish())
        samples = self.session.received
        self.emit({"type": "end", "frames": self.session.next_frame, "samples": samples})

    def _close(self) -> None:
        self.session.close()  # a scene's decoder

    def _push(self, name: str, pcm: np.ndarray, arrived: float, from_client: bool = False) -> None:
        if len(pcm) == 0:
            return
        speaker = self.speakers[name]
        if from_client:
            speaker.input_samples += len(pcm)
        end = self.session.received[name] + len(pcm)
        speaker.clock.add(end, arrived, speaker.input_samples if from_client else None)
        self._send(self.session.push(name, pcm, arrived))

    def _fill(self, names: list[str]) -> None:
        """Pad the streams `names` with silence up to the furthest one."""
        furthest = max(self.session.received.values())
        lagging = [name for name in names if self.session.received[name] < furthest]
        if not lagging:
            return
        now = time.perf_counter()
        for name in lagging:
            self.speakers[name].clock.add(furthest, now, None)
        self._send(self.session.fill(lagging, now))

    def _send(self, frames: list) -> None:
        for frame in frames:
            sample = int(round(frame.timestamp * RATE))
            looked = {name: speaker.clock.lookup(sample) for name, speaker in self.speakers.items()}
            arrived = max(at for at, _input in looked.values())  # the frame waited for the last of them
            inputs = {name: input_sample for name, (_at, input_sample) in looked.items()}
            data = encode_image(frame.image, self.options.format, self.config.jpeg_quality)
            self.emit(("frame", frame.index, frame.timestamp, arrived, inputs, data))
