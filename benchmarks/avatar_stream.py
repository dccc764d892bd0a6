"""Full-frame streaming over an avatar loop vs the crop stream: live audio-to-frame latency and the paste cost.

Issue 12 asks that `StreamingSession` emit full frames over an avatar loop "with the same latency budget as the crop
plus the measured blend cost". This feeds the same real speech (espeak-ng), paced like a microphone
(`streaming.simulate_live`, 20 ms chunks), to a crop stream and to a full-frame stream (`AvatarSession`) of one
built-in person, both driven by the loop's own head motion, alternating in each round so a busy host slows both
alike, and prints per run the latency p50/p95 (the first tenth, start-up, left out) and the paste cost per frame at
the loop's frame size.

    .venv/bin/python benchmarks/avatar_stream.py [--reference id01] [--seconds 8] [--rounds 2] [--backend onnx]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from apb2face.data import audio as A
from apb2face.data.synth.speech import synthesize
from apb2face.inference.avatar import load_avatar
from apb2face.inference.avatar_stream import AvatarSession, LoopMotion
from apb2face.inference.compose import ComposeConfig
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.revoice import RevoiceConfig
from apb2face.inference.streaming import StreamingSession, simulate_live

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you have a moment.",
    "We will meet again at the station at noon.",
)


def speech(seconds: float) -> np.ndarray:
    parts = []
    while sum(len(p) for p in parts) < seconds * A.SAMPLE_RATE:
        parts.append(synthesize(SENTENCES[len(parts) % len(SENTENCES)]).audio)
        parts.append(np.zeros(A.SAMPLE_RATE // 4, np.float32))
    return np.concatenate(parts)[: int(seconds * A.SAMPLE_RATE)]


def live(session, pcm: np.ndarray, chunk_ms: float) -> tuple[float, float, int]:
    timing = simulate_live(session, pcm, chunk_ms)
    steady = timing.latencies_ms[len(timing.latencies_ms) // 10 :]
    return float(np.percentile(steady, 50)), float(np.percentile(steady, 95)), timing.repeated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the demo checkpoint")
    parser.add_argument("--reference", default="id01")
    parser.add_argument("--region", default="face", choices=("face", "mouth"))
    parser.add_argument("--backend", default="onnx", choices=("torch", "onnx"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--realtime", action="store_true", help="both sessions repeat frames rather than fall behind")
    args = parser.parse_args()

    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, backend=args.backend)
    started = time.perf_counter()
    avatar = load_avatar(pipe, args.reference, RevoiceConfig())
    print(
        f"avatar {args.reference}: {avatar.track.shape[1]}x{avatar.track.shape[0]}, {len(avatar.track)} frames "
        f"at {avatar.track.fps:g} fps, ready in {time.perf_counter() - started:.1f} s (clip and track cached)"
    )
    pcm = speech(args.seconds)
    compose = ComposeConfig(region=args.region)
    warm = AvatarSession(pipe, avatar, compose=compose)
    warm.stream([pcm[: A.SAMPLE_RATE]])  # reference encoding, ONNX sessions, the loop's frames decoded
    print(f"{args.seconds:g} s of speech, {args.chunk_ms:g} ms chunks, backend {args.backend}, region {args.region}")
    print("round | crop p50 / p95 ms (repeated) | full frame p50 / p95 ms (repeated) | paste ms/frame | setup ms")
    for k in range(args.rounds):
        motion = LoopMotion(avatar.track)
        crop = StreamingSession(pipe, args.reference, fps=avatar.track.fps, motion=motion, realtime=args.realtime)
        crop_p50, crop_p95, crop_rep = live(crop, pcm, args.chunk_ms)
        t0 = time.perf_counter()
        full = AvatarSession(pipe, avatar, compose=compose, realtime=args.realtime)
        setup_ms = (time.perf_counter() - t0) * 1000
        full_p50, full_p95, full_rep = live(full, pcm, args.chunk_ms)
        paste_ms = full.blend_seconds / max(full.blended, 1) * 1000
        print(
            f"{k + 1} | {crop_p50:.0f} / {crop_p95:.0f} ({crop_rep}) | {full_p50:.0f} / {full_p95:.0f} ({full_rep}) | "
            f"{paste_ms:.2f} | {setup_ms:.0f}"
        )


if __name__ == "__main__":
    main()
