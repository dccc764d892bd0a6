"""Graceful overload, measured: a live stream (simulated microphone, 20 ms chunks) on one CPU core, with busy
processes started on the same core for the middle of the stream, with and without the session's real-time mode.

    .venv/bin/python benchmarks/bench_overload.py [--busy 3] [--seconds 12] [--load 4,8] [--checkpoint CKPT]
        [--all-cores]

Prints, per stretch of the stream (before, during, after the load): frames, frames repeated, and audio-to-frame
latency p50 / p95 / max. The busy processes are plain spin loops pinned to the stream's core, so the stream gets
about 1 / (busy + 1) of it while they run. Figures only; nothing is asserted (tests/inference/test_streaming.py
tests the behaviour with a controlled clock).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading

import numpy as np


def speech_like(seconds: float) -> np.ndarray:
    """Noise with a 3 Hz syllable envelope (as `apb2face bench` streams), 16 kHz."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 16000)) / 16000
    return (rng.standard_normal(len(t)) * 0.2 * np.sin(2 * np.pi * 3 * t) ** 2).astype(np.float32)


def spin(cpus: set[int], count: int) -> list[subprocess.Popen]:
    code = f"import os\nos.sched_setaffinity(0, {cpus})\nwhile True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def run(pipe, pcm: np.ndarray, realtime: bool, busy: int, load: tuple[float, float], cpus: set[int]) -> dict:
    from apb2face.inference.streaming import StreamingSession, simulate_live

    session = StreamingSession(pipe, pipe.identities[0], realtime=realtime)
    procs: list[subprocess.Popen] = []
    start = threading.Timer(load[0], lambda: procs.extend(spin(cpus, busy)))
    stop = threading.Timer(load[1], lambda: [p.kill() for p in procs])
    frames: list = []
    start.start(), stop.start()
    try:
        timing = simulate_live(session, pcm, chunk_ms=20, on_frame=frames.append)
    finally:
        start.cancel(), stop.cancel()
        for p in procs:
            p.kill()
            p.wait()
    t = np.array([f.timestamp for f in frames])
    repeated = np.array([f.repeated for f in frames])
    stretches = {"before": t < load[0], "during": (t >= load[0]) & (t < load[1]), "after": t >= load[1]}
    return {
        name: (int(mask.sum()), int(repeated[mask].sum()), *np.percentile(timing.latencies_ms[mask], [50, 95, 100]))
        for name, mask in stretches.items()
    } | {"overloads": session.overloads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=3, help="spinning processes on the stream's core during the load")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--load", default="4,8", help="start,end of the load in seconds of stream time")
    parser.add_argument("--checkpoint", help="default: the demo checkpoint")
    parser.add_argument("--all-cores", action="store_true", help="stream and busy processes on every core, not one")
    args = parser.parse_args()
    import torch

    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.inference.streaming import StreamingSession

    cpus = set(os.sched_getaffinity(0)) if args.all_cores else {max(os.sched_getaffinity(0))}
    os.sched_setaffinity(0, cpus)
    torch.set_num_threads(len(cpus))
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    load = tuple(float(x) for x in args.load.split(","))
    pcm = speech_like(args.seconds)
    warm = StreamingSession(pipe, pipe.identities[0])  # one-off set-up costs are paid before the timed streams
    warm.push(pcm[:16000])
    where = f"cpus {sorted(cpus)}, torch {torch.get_num_threads()} thread(s)"
    print(
        f"{where}; {args.busy} busy processes on them from {load[0]:g} s to {load[1]:g} s of a stream in 20 ms chunks"
    )
    for realtime in (False, True):
        result = run(pipe, pcm, realtime, args.busy, load, cpus)
        print(f"realtime={realtime}: {result.pop('overloads')} overload episode(s)")
        for name, (frames, repeated, p50, p95, worst) in result.items():
            print(
                f"  {name:>6}: {frames:3d} frames, {repeated:3d} repeated, "
                f"latency p50 {p50:.0f} / p95 {p95:.0f} / max {worst:.0f} ms"
            )


if __name__ == "__main__":
    main()
