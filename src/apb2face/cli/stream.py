"""Stream: drive a face with live audio and emit 25 fps frames as the audio arrives (bounded look-ahead).

--audio-in - reads raw PCM from stdin: signed 16-bit little-endian mono at --sample-rate (default 16000), e.g.
`arecord -f S16_LE -r 16000 -c 1 -t raw | apb2face stream --reference woman1 --audio-in - --out live.mp4`.
A file is decoded like `generate` does and fed in --chunk-ms chunks (as fast as possible, or at the speed of speech
with --realtime); its frames equal `generate`'s for the same seed. --out OUT.mp4 writes video + audio incrementally;
--out - writes raw rgb24 frames to stdout (e.g. into `ffplay -f rawvideo -pixel_format rgb24 -video_size SxS
-framerate 25 -i -`). The summary (frames, speed, look-ahead, live latency) goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from apb2face.cli.common import add_backend_arguments, add_checkpoint_argument

    parser.add_argument(
        "--reference",
        required=True,
        metavar="IMAGE|IDENTITY",
        help="a photo with a face or the name of an identity bundled in the checkpoint",
    )
    parser.add_argument(
        "--audio-in",
        required=True,
        metavar="FILE|-",
        help="driving audio: a file FFmpeg reads, or - for raw s16le mono PCM on stdin",
    )
    parser.add_argument(
        "--out",
        metavar="OUT.mp4|-",
        help="write an MP4 (video + audio), or - for raw rgb24 frames "
        "on stdout; without it frames are only counted and timed",
    )
    add_checkpoint_argument(parser)
    add_backend_arguments(parser)
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate of PCM on stdin (default 16000)")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio chunk size fed per step (default 20)")
    parser.add_argument(
        "--realtime", action="store_true", help="feed a file at the speed of speech and report audio-to-frame latency"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the natural motion (default: 0)")
    parser.add_argument("--pose", type=Path, metavar="FILE", help="head pose per frame: yaw,pitch,roll degrees")
    parser.add_argument("--blink", type=Path, metavar="FILE", help="eye openness per frame: left,right in [0, 1]")
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate (default: 25)")


def run(args: argparse.Namespace) -> int:
    from apb2face.data import audio as A
    from apb2face.data.video import Mp4Writer
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.inference.streaming import StreamingSession

    if args.int8 and args.backend != "onnx":
        raise UserError("--int8 needs --backend onnx")
    if not 5.0 <= args.chunk_ms <= 1000.0:
        raise UserError(f"--chunk-ms must be between 5 and 1000, got {args.chunk_ms}")
    if not 8000 <= args.sample_rate <= 192000:
        raise UserError(f"--sample-rate must be between 8000 and 192000, got {args.sample_rate}")
    if args.out not in (None, "-") and Path(args.out).suffix.lower() != ".mp4":
        raise UserError("output must be an .mp4 file (or - for raw frames on stdout)", args.out)
    live_input = args.audio_in == "-"
    if args.realtime and live_input:
        raise UserError("--realtime applies to file input (stdin already arrives in real time)")

    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, backend=args.backend, int8=args.int8)
    num_frames = None
    if live_input:
        rate = args.sample_rate
        chunks = _stdin_chunks(rate, args.chunk_ms)
        mux_audio = None
    else:
        driving = pipe.prepare_audio(args.audio_in, None, args.fps)
        rate = A.SAMPLE_RATE
        pcm = A.resample(driving.audio, driving.sample_rate, A.SAMPLE_RATE)  # exactly what `generate` analyses
        num_frames = driving.num_frames
        chunks = _file_chunks(pcm, args.chunk_ms, args.realtime)
        mux_audio = (driving.audio, driving.sample_rate)
    session = StreamingSession(
        pipe, args.reference, fps=args.fps, seed=args.seed, pose=args.pose, eyes=args.blink, sample_rate=rate
    )
    log.info(
        "streaming %s with %s (%s): look-ahead %.0f ms of audio per frame",
        args.reference,
        args.checkpoint or "the demo checkpoint",
        args.backend,
        session.lookahead_s * 1000,
    )

    latencies: list[float] = []
    start = time.perf_counter()

    def frames_with_latency(feed: Iterator[np.ndarray], on_chunk=None) -> Iterator:
        for chunk in feed:
            if on_chunk is not None:
                on_chunk(chunk)
            for frame in session.push(chunk):
                latencies.append((time.perf_counter() - start) * 1000 - frame.timestamp * 1000)
                yield frame
        yield from session.finish(num_frames)

    from tqdm import tqdm

    count = 0
    progress = tqdm(total=num_frames, desc="stream", unit="frame", leave=False)
    try:
        if args.out is None or args.out == "-":
            sink = sys.stdout.buffer if args.out == "-" else None
            for frame in frames_with_latency(chunks):
                if sink is not None:
                    sink.write(frame.image.tobytes())
                    sink.flush()
                count += 1
                progress.update()
        else:
            writer = Mp4Writer(
                args.out,
                fps=args.fps,
                size=(pipe.image_size, pipe.image_size),
                audio_rate=mux_audio[1] if mux_audio else rate,
            )
            with writer:
                if mux_audio is not None:
                    writer.write_audio(mux_audio[0])
                    feed = frames_with_latency(chunks)
                else:
                    feed = frames_with_latency(chunks, on_chunk=writer.write_audio)
                for frame in feed:
                    writer.write_frame(frame.image)
                    count += 1
                    progress.update()
    finally:
        progress.close()
    wall = time.perf_counter() - start
    audio_s = session.samples / A.SAMPLE_RATE
    summary = f"{count} frames for {audio_s:.2f} s of audio in {wall:.2f} s ({count / max(wall, 1e-9):.1f} fps)"
    if args.realtime:  # only a paced source gives meaningful latencies (a pipe may deliver faster than speech)
        live = np.asarray(latencies[len(latencies) // 10 :] or latencies)  # skip the start-up tenth
        if live.size:
            summary += (
                f"; audio-to-frame latency p50 {np.percentile(live, 50):.0f} ms, p95 {np.percentile(live, 95):.0f} ms"
            )
    print(summary + (f"; wrote {args.out}" if args.out not in (None, "-") else ""), file=sys.stderr)
    return 0


def _file_chunks(pcm: np.ndarray, chunk_ms: float, realtime: bool) -> Iterator[np.ndarray]:
    from apb2face.data import audio as A

    step = max(1, int(round(chunk_ms / 1000 * A.SAMPLE_RATE)))
    start = time.perf_counter()
    for lo in range(0, len(pcm), step):
        if realtime:  # a chunk is available once its last sample has been spoken
            wait = start + min(lo + step, len(pcm)) / A.SAMPLE_RATE - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield pcm[lo : lo + step]


def _stdin_chunks(rate: int, chunk_ms: float) -> Iterator[np.ndarray]:
    """Raw s16le mono from stdin, returned as soon as bytes arrive (at most one chunk at a time)."""
    fd = sys.stdin.fileno()
    size = max(2, int(round(chunk_ms / 1000 * rate)) * 2)
    carry = b""
    while True:
        data = os.read(fd, size)
        if not data:
            break
        data = carry + data
        whole = len(data) // 2 * 2
        carry = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
