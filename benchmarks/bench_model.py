"""Parameters, GMAC and CPU throughput of a model config (default: `paper` at 256x256).

Times the inference stack per frame: fuser + generator (full forward, the reference re-encoded each frame), and
the generator's cached path (reference features computed once, `render` per frame), at batch 1 and 8 — fp32,
torch.inference_mode, warm-up calls first, median of the timed calls. Random weights: speed does not depend on them.

    .venv/bin/python benchmarks/bench_model.py [--config paper] [--threads 2] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import torch

from apb2face.config import load
from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.profile import model_report, time_call
from apb2face.training.config import RunConfig


def render_cached(model: APB2Face, features: object, audio: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor):
    """The per-frame work when the reference features are cached: fuse, then render."""
    return model.render(features, model.fuse(audio, pose, eyes)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load(RunConfig, args.config).model
    print(
        f"config {args.config}: {config.image_size}x{config.image_size}, generator {config.generator}, "
        f"torch {torch.__version__}, {args.threads} threads, device {args.device}, cpu count {os.cpu_count()}"
    )
    print_sizes(config)
    device = torch.device(args.device)
    model = APB2Face(config).eval().to(device)
    for batch in (int(b) for b in args.batches.split(",")):
        time_batch(model, batch, device, args.warmup, args.repeats)


def print_sizes(config: ModelConfig) -> None:
    """Parameters and GMAC per module, and the inference total."""
    report = model_report(config)
    for row in report["modules"]:
        print(f"  {row['name']:<10} params {row['params']:>10,}  GMAC {row['gmac']:.3f}")
    inf = report["inference"]
    print(
        f"  {'total':<10} params {inf['params']:>10,}  GMAC {inf['gmac']:.3f}  (discriminator, training only: "
        f"{report['discriminator']['params']:,} params)"
    )


def time_batch(model: APB2Face, batch: int, device: torch.device, warmup: int, repeats: int) -> None:
    """Print the median time of the full forward and of the cached-reference path at one batch size."""
    config, s = model.config, model.config.image_size
    g = torch.Generator().manual_seed(0)
    ref = (torch.rand(batch, 3, s, s, generator=g) * 2 - 1).to(device)
    audio = torch.randn(batch, 1, config.audio_window, config.num_audio_features, generator=g).to(device)
    pose = (torch.randn(batch, 3, generator=g) * 10).to(device)
    eyes = torch.rand(batch, 2, generator=g).to(device)
    with torch.inference_mode():
        features = model.encode_reference(ref[:1])
        runs = {
            "full forward": functools.partial(model, ref, audio, pose, eyes),
            "cached reference": functools.partial(render_cached, model, features, audio, pose, eyes),
        }
        for name, fn in runs.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            times = time_call(fn, warmup, repeats)
            # CPU time / wall time ~= threads when the machine is otherwise idle; lower means contention
            busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            med = statistics.median(times)
            print(
                f"batch {batch:>2} {name:<17}: median {med * 1000:8.1f} ms/batch (min {min(times) * 1000:.1f}) "
                f"-> {batch / med:6.2f} frames/s  [cpu/wall {busy:.2f}]"
            )


if __name__ == "__main__":
    main()
