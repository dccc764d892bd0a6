"""Live sessions over a WebSocket: PCM or text in, JPEG/PNG frames out as soon as they are rendered.

Protocol (all JSON text messages are objects; binary messages from the server are framed, see `pack`):

client -> server
    first   {"identity": NAME, "sample_rate": 16000, "format": "jpeg"|"png", "idle": true}
    then    binary PCM16 little-endian mono at sample_rate (any chunk size up to 2 s)
            {"text": "...", "voice": "en-us"}    spoken by espeak-ng at the speed of speech
            {"end": true}                        render what is left, send {"type": "end", ...} and close
server -> client
    {"type": "ready", "fps", "size", "sample_rate": 16000, "lookahead_ms", "identity"}
    binary  pack({"type": "frame", "index", "t", "latency_ms", "format", "input_sample"}, image bytes)
    binary  pack({"type": "audio", "sample", "sample_rate": 16000}, PCM16 of spoken text, to play in sync: frame
            `index` shows stream time t = index / fps, and this audio starts at stream time sample / 16000)
    {"type": "error", "error": message}
    {"type": "end", "frames", "samples", "latency_p50_ms", "latency_p95_ms"}

Stream time advances with the audio: 16 kHz samples of microphone audio, of spoken text, and (with "idle") of
silence fed once no audio has come for `live_idle_ms`, so the face idles (blinks, sway, closed mouth). Latency of a
frame = when it is sent minus when the audio of its own instant arrived (it includes the model's look-ahead).
`input_sample` places a frame in the client's own audio: the index, counted at 16 kHz from the first sample the
client sent, of the frame's instant; null when that instant is silence the server filled in or spoken text.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.serve.config import ServeConfig
from apb2face.serve.engine import Engine

RATE = A.SAMPLE_RATE
TEXT_BLOCK = RATE // 25  # spoken text is fed in 40 ms blocks at the speed of speech
MAX_CHUNK_S = 2.0
FORMATS = ("jpeg", "png")


def pack(header: dict, payload: bytes) -> bytes:
    """One binary message: 4-byte big-endian length of the UTF-8 JSON header, the header, then the payload."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(head)) + head + payload


def unpack(message: bytes) -> tuple[dict, bytes]:
    (size,) = struct.unpack(">I", message[:4])
    return json.loads(message[4 : 4 + size]), message[4 + size :]


class LiveCapacity:
    """At most `limit` live sessions at once: one more is refused (503), never slowing the others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active -= 1

    @property
    def active(self) -> int:
        with self._lock:
            return self._active


@dataclass(frozen=True)
class LiveOptions:
    identity: str
    sample_rate: int
    format: str
    idle: bool


def parse_start(message: Any, identities: list[str]) -> LiveOptions:
    """The first client message; UserError with a message for the client when it is not acceptable."""
    if not isinstance(message, dict):
        raise UserError('the first message must be a JSON object like {"identity": "...", "sample_rate": 16000}')
    identity = message.get("identity")
    if identity not in identities:
        raise UserError(f"unknown identity {str(identity)[:40]!r} (known: {', '.join(identities)})")
    rate, fmt, idle = parse_stream_options(message)
    return LiveOptions(identity=identity, sample_rate=rate, format=fmt, idle=idle)


def parse_stream_options(message: dict) -> tuple[int, str, bool]:
    """(sample_rate, format, idle) of a first message, as every kind of session takes them; UserError for the
    client when one is not acceptable."""
    rate = message.get("sample_rate", RATE)
    if not isinstance(rate, int) or isinstance(rate, bool) or not 8000 <= rate <= 192000:
        raise UserError("sample_rate must be an integer between 8000 and 192000")
    fmt = message.get("format", "jpeg")
    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}")
    idle = message.get("idle", True)
    if not isinstance(idle, bool):
        raise UserError("idle must be true or false")
    return rate, fmt, idle


def decode_pcm16(data: bytes, sample_rate: int) -> np.ndarray:
    """A client's PCM16 chunk as float samples; UserError for the client when it is cut mid-sample or too long."""
    if len(data) % 2:
        raise UserError("PCM16 chunks must have an even number of bytes")
    if len(data) / 2 > MAX_CHUNK_S * sample_rate:
        raise UserError(f"PCM chunks must be at most {MAX_CHUNK_S:g} s long")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class ArrivalClock:
    """For each 16 kHz stream sample: when it arrived, and which sample of the client's own audio it is (None for
    silence the server filled in and for spoken text). Recorded per chunk."""

    def __init__(self) -> None:
        self._ends: list[int] = []
        self._times: list[float] = []
        self._inputs: list[int | None] = []  # the client's 16 kHz sample count at the end of the chunk

    def add(self, end_sample: int, at: float, input_end: int | None) -> None:
        self._ends.append(end_sample)
        self._times.append(at)
        self._inputs.append(input_end)
        if len(self._ends) > 4096:  # old chunks: frames that far back have all been sent
            del self._ends[:2048], self._times[:2048], self._inputs[:2048]

    def lookup(self, sample: int) -> tuple[float, int | None]:
        """(arrival time, input sample) of stream sample `sample`."""
        if not self._ends:  # frames before any audio (a stream ended at once): their audio is "now"
            return time.perf_counter(), None
        i = min(bisect.bisect_right(self._ends, sample), len(self._ends) - 1)
        end = self._inputs[i]
        return self._times[i], None if end is None else max(0, end - (self._ends[i] - sample))


class SessionWorker:
    """The rendering thread of one session, as the app drives it: inputs go into a queue (from the event loop), one
    thread takes them and emits messages through `emit` (called from that thread; the app hands them to the event
    loop), then None once it is done. A kind of session says how to take an input (`_take`), what to do when none
    has come for `live_idle_ms` (`_idle`) and how to end (`_finish`)."""

    thread_name = "apb2face-live"
    what = "live session"  # as failures are logged

    def __init__(self, config: ServeConfig, options: Any, emit: Callable[[Any], None], session: Any) -> None:
        self.config = config
        self.options = options
        self.emit = emit
        self.session = session
        self.inputs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    @property
    def lookahead_ms(self) -> float:
        return self.session.lookahead_s * 1000

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # called from the event loop
    def pcm(self, data: bytes) -> None:
        raise NotImplementedError

    def text(self, text: Any, voice: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        self.inputs.put(("end",))

    def stop(self) -> None:
        self.inputs.put(("stop",))

    # the thread
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a session's failure ends that session only
            # logged under the module of the kind of session, so a log names which kind failed
            logging.getLogger(type(self).__module__).exception("%s failed", self.what)
            self.emit({"type": "error", "error": f"internal error ({type(exc).__name__})"})
        finally:
            self._close()
            self.emit(None)

    def _loop(self) -> None:
        idle_s = self.config.live_idle_ms / 1000
        while True:
            try:
                item = self.inputs.get(timeout=idle_s)
            except queue.Empty:
                if self.options.idle:
                    self._idle(idle_s)
                continue
            kind = item[0]
            if kind == "stop":
                return
            if kind == "end":
                self._finish()
                return
            self._take(item)

    def _take(self, item: tuple) -> None:
        """One input the event loop queued (other than end and stop)."""
        raise NotImplementedError

    def _idle(self, seconds: float) -> None:
        """No input for `seconds` in an idle session: feed silence so that the faces idle."""
        raise NotImplementedError

    def _finish(self) -> None:
        """The client sent end: render what is left and emit the end message."""
        raise NotImplementedError

    def _close(self) -> None:
        """Free what the session holds once the thread ends (nothing by default)."""


class LiveWorker(SessionWorker):
    """The rendering thread of a one-face session."""

    def __init__(self, engine: Engine, config: ServeConfig, options: LiveOptions, emit: Callable[[Any], None]) -> None:
        session = engine.streaming_session(options.identity, seed=0, realtime=True)
        super().__init__(config, options, emit, session)
        self.engine = engine
        self.clock = ArrivalClock()
        self.samples = 0
        self.input_samples = 0  # of the client's audio, at 16 kHz
        self._resampler = None
        if options.sample_rate != RATE:
            import soxr

            self._resampler = soxr.ResampleStream(options.sample_rate, RATE, 1, dtype="float32")

    # called from the event loop
    def pcm(self, data: bytes) -> None:
        self.inputs.put(("pcm", decode_pcm16(data, self.options.sample_rate), time.perf_counter()))

    def text(self, text: Any, voice: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise UserError("text must be a non-empty string")
        if len(text) > self.config.max_text_chars:
            raise UserError(f"text is longer than {self.config.max_text_chars} characters")
        if not isinstance(voice, str) or not voice.replace("-", "").replace("+", "").isalnum() or len(voice) > 20:
            raise UserError("voice must be an espeak-ng voice name like en-us or en-gb+f3")
        self.inputs.put(("text", text, voice))

    # the thread
    def _take(self, item: tuple) -> None:
        if item[0] == "pcm":
            pcm = item[1] if self._resampler is None else self._resampler.resample_chunk(item[1])
            self._push(pcm, item[2], from_client=True)
        elif item[0] == "text":
            self._speak(item[1], item[2])

    def _idle(self, seconds: float) -> None:
        self._push(np.zeros(int(RATE * seconds), np.float32), time.perf_counter())

    def _finish(self) -> None:
        if self._resampler is not None:  # the resampler's last samples
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._push(tail, time.perf_counter(), from_client=True)
        frames = self.session.finish()
        self._send_frames(frames)
        self.emit({"type": "end", "frames": self.session.next_frame, "samples": self.samples})

    def _speak(self, text: str, voice: str) -> None:
        try:
            audio, rate = self.engine.speak(text, voice)
        except UserError as exc:
            self.emit({"type": "error", "error": str(exc)})
            return
        audio = A.resample(audio, rate, RATE)
        if len(audio) / RATE > self.config.max_audio_s:
            self.emit({"type": "error", "error": f"spoken text is longer than {self.config.max_audio_s:g} s"})
            return
        pcm16 = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        self.emit(("audio", {"type": "audio", "sample": self.samples, "sample_rate": RATE}, pcm16))
        start = time.perf_counter()
        for lo in range(0, len(audio), TEXT_BLOCK):
            due = start + min(lo + TEXT_BLOCK, len(audio)) / RATE  # available once spoken, like a microphone
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            self._push(audio[lo : lo + TEXT_BLOCK], due)

    def _push(self, pcm: np.ndarray, arrived: float, from_client: bool = False) -> None:
        if len(pcm) == 0:
            return
        self.samples += len(pcm)
        if from_client:
            self.input_samples += len(pcm)
        self.clock.add(self.samples, arrived, self.input_samples if from_client else None)
        self._send_frames(self.session.push(pcm, arrived))

    def _send_frames(self, frames: list) -> None:
        for frame in frames:
            data = encode_image(frame.image, self.options.format, self.config.jpeg_quality)
            arrived, input_sample = self.clock.lookup(int(round(frame.timestamp * RATE)))
            self.emit(("frame", frame.index, frame.timestamp, arrived, input_sample, data))


def encode_image(image: np.ndarray, fmt: str, jpeg_quality: int) -> bytes:
    """An RGB frame as PNG or JPEG bytes, as a frame message carries it."""
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, data = cv2.imencode(".png", bgr)
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    return data.tobytes()


def frame_message(item: tuple, fmt: str, latencies: list[float]) -> bytes:
    """Encode a rendered frame at the moment it is sent (its latency ends here)."""
    _, index, timestamp, arrived, input_sample, payload = item
    latency = (time.perf_counter() - arrived) * 1000
    latencies.append(latency)
    header = {"type": "frame", "index": index, "t": round(timestamp, 4), "latency_ms": round(latency, 1)}
    header.update(format=fmt, input_sample=input_sample)
    return pack(header, payload)


async def pump(websocket: Any, outbox: asyncio.Queue, fmt: str, latencies: list[float]) -> None:
    """Send what the worker emits until it is done (None)."""
    while (item := await outbox.get()) is not None:
        if isinstance(item, dict):
            if item.get("type") == "end" and latencies:
                item["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
                item["latency_p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
            await websocket.send_text(json.dumps(item))
        elif item[0] == "frame":
            await websocket.send_bytes(frame_message(item, fmt, latencies))
        else:
            await websocket.send_bytes(pack(item[1], item[2]))
