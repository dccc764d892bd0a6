"""Speed of each config on this machine: parameters, GMAC, frames/s for PyTorch eager and ONNX Runtime fp32/INT8
at batch 1 and 8, the end-to-end rate of one stream (audio features + fuser + generator + frame conversion, ONNX
Runtime), the audio-to-frame latency of a live stream (p50/p95/max, 20 ms chunks) and the share of the frame budget
(40 ms at 25 fps) its work takes. Every config runs at one image size (256 px unless --size says otherwise), so
configs are compared like for like. Random weights (speed does not depend on them). Takes about a minute per config;
absolute figures vary with machine load, so compare configs within one run; the host (CPU model, cores) is reported.
"""

from __future__ import annotations

import argparse
import json
import logging

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configs", default="paper,mobile", help="comma-separated presets or YAML files (default: paper,mobile)"
    )
    parser.add_argument(
        "--size",
        type=int,
        choices=(64, 128, 256),
        default=256,
        help="image size every config is benchmarked at (default: 256, so configs compare at one resolution)",
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per figure (default: 10)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="audio per stream for the end-to-end and latency figures (default: 6)",
    )
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="PCM chunk size of the streams (default 20)")
    parser.add_argument("--no-int8", action="store_true", help="skip the INT8 figures")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", metavar="FILE.json", help="also write the JSON to this file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="model.key=value",
        help="model settings for every config, e.g. model.audio_lookahead=4 (latency) or model.generator_width=0.5",
    )


def run(args: argparse.Namespace) -> int:
    from apb2face.config import read_preset
    from apb2face.inference.benchmark import BenchOptions, run_bench
    from apb2face.io import write_json

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not names:
        raise UserError("--configs is empty")
    for name in names:
        read_preset(name)  # unknown names fail here, before minutes of benchmarking
    for word in args.overrides:
        if not word.startswith("model."):
            raise UserError(f"bench takes only model.* settings, got {word!r}")
    if (
        not 1 <= args.threads <= 64
        or args.repeats < 1
        or not 1.0 <= args.seconds <= 600
        or not 5.0 <= args.chunk_ms <= 200.0
    ):
        raise UserError("--threads must be 1-64, --repeats >= 1, --seconds 1-600, --chunk-ms 5-200")
    options = BenchOptions(
        threads=args.threads,
        repeats=args.repeats,
        e2e_seconds=args.seconds,
        live_seconds=args.seconds,
        int8=not args.no_int8,
        image_size=args.size,
        chunk_ms=args.chunk_ms,
        model_overrides=tuple(args.overrides),
    )
    report = run_bench(names, options)
    if args.out:
        write_json(args.out, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    return 0


def format_table(report: dict) -> str:
    keys = ["torch_b1", "torch_b8", "onnx_b1", "onnx_b8", "onnx_int8_b1", "onnx_int8_b8", "e2e_b1", "e2e_par"]
    head = (
        f"{'config':<10}{'px':>5}{'params':>9}{'GMAC':>7}{'/frame':>7}"
        + "".join(f"{k:>13}" for k in keys)
        + f"{'lat p50':>9}{'p95':>7}{'max':>7}{'budget':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, c in report["configs"].items():
        extra = report["setup"]["per_config"][name]
        latency = c["stream_latency_ms"]
        fps = "".join(f"{c['fps'][k]:>13.1f}" if k in c["fps"] else f"{'-':>13}" for k in keys)
        lines.append(
            f"{name:<10}{extra['image_size']:>5}{c['params'] / 1e6:>8.2f}M{c['gmac']:>7.2f}"
            f"{extra['gmac_per_frame']:>7.2f}{fps}{latency['p50']:>9.0f}{latency['p95']:>7.0f}{latency['max']:>7.0f}"
            f"{c['frame_budget_used']:>8.0%}"
        )
    configs = report["configs"]
    if len(configs) > 1:  # side by side in one run: the ratios are the reliable part
        first, *others = configs
        base = configs[first]
        ratios = ", ".join(
            f"{name} {configs[name]['fps']['e2e'] / base['fps']['e2e']:.1f}x end to end and "
            f"{base['gmac'] / configs[name]['gmac']:.1f}x fewer GMAC"
            for name in others
        )
        lines.append(f"against {first} (end to end: each config's better of e2e_b1 and e2e_par): {ratios}")
    s = report["setup"]
    lookaheads = ", ".join(f"{name} {extra['lookahead_ms']:g} ms" for name, extra in s["per_config"].items())
    lines.append(
        f"frames/s (e2e_b1: one stream, a frame at a time; e2e_par: {s['threads']} frames at once, a thread each); "
        f"latency in ms (audio spoken -> frame ready, {s['chunk_ms']:.0f} ms chunks; of it the model's "
        f"look-ahead: {lookaheads}); budget: share of each 40 ms frame period the live stream's work takes "
        f"(over 100 % falls behind)"
    )
    lines.append(
        f"host: {s['cpu']}, {s['cpu_count']} logical cores ({s['usable_cpus']} usable), {s['threads']} threads; "
        f"torch {s['torch']}, onnxruntime {s['onnxruntime']}"
    )
    return "\n".join(lines)
