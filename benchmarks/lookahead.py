"""Look-ahead vs latency vs lip sync: the trade-off table of docs/realtime.md.

The look-ahead L (feature rows of 10 ms after a frame's time that its audio window holds) is a property of the
fuser alone; the renderer never sees audio. So one checkpoint per L, each a fuser-only fine-tune of the same base with
the same recipe (`train.train_only=fuser`, `model.audio_lookahead=L`), isolates what L costs in lip sync, and the
latency of L is measured on the real-time preset at 256 px with random weights (speed does not depend on them).

Per checkpoint, on the held-out split of a dataset (the first N frames of each clip):
- lip-sync r: mouth opening (face mesh on the generated frames) vs audio RMS, best lag within +-3 frames (the
  evaluation's measure) and the median lag it picked (lag > 0: the mouth moves before the sound);
- mouth r vs the real frames at lag 0: how closely the generated mouth follows the true one in time (a late mouth
  loses here where the best-lag r does not);
- M-LMD (% of the inter-ocular distance), also at lag 0.
Per L, `apb2face bench` figures (random weights) of the checkpoints' own architecture and of the real-time preset at
256 px: algorithmic look-ahead, live latency p50/p95 (20 ms chunks) and the share of the frame budget used.

    .venv/bin/python benchmarks/lookahead.py --data data/builtin128 --checkpoint runs/l12/final \\
        --checkpoint runs/l4/final --checkpoint runs/l0/final
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from apb2face.evaluation import metrics as M
from apb2face.evaluation.evaluate import EvalConfig, build_report, load_inputs, run_clips
from apb2face.inference.benchmark import BenchOptions, bench_config
from apb2face.models.modeling import load_config


def lag_zero_mouth_r(results: list) -> float:
    """Mean over clips of Pearson r between generated and real mouth opening, frame for frame."""
    values = []
    for r in results:
        gen, real = r.gen.mouth, r.gt.mouth
        ok = np.isfinite(gen) & np.isfinite(real)
        if ok.sum() >= 8 and np.std(gen[ok]) > 1e-9 and np.std(real[ok]) > 1e-9:
            values.append(float(np.corrcoef(gen[ok], real[ok])[0, 1]))
    return float(np.mean(values)) if values else float("nan")


def quality(checkpoint: str, data: str, frames: int) -> dict:
    cfg = EvalConfig(max_frames_per_clip=frames, fid_weights="none")
    inputs = load_inputs(checkpoint, data, cfg)
    runs = run_clips(inputs, cfg)
    report = build_report(inputs, runs, cfg)
    lags = [M.lipsync_correlation(r.gen.mouth, r.rms)[1] for r in runs.results]
    return {
        "lipsync_r": report["lipsync_corr"]["mean"],
        "lipsync_r_real": report["ground_truth"]["lipsync_corr"]["mean"],
        "median_lag": float(np.median(lags)),
        "mouth_r_vs_real": lag_zero_mouth_r(runs.results),
        "lmd_mouth": report["lmd_mouth"]["mean"],
        "frames": int(sum(inputs.lengths)),
    }


def latency(lookahead: int, preset: str, size: int, chunk_ms: float, seconds: float) -> dict:
    options = BenchOptions(
        threads=2,
        repeats=3,
        e2e_seconds=seconds,
        live_seconds=seconds,
        int8=False,
        image_size=size,
        chunk_ms=chunk_ms,
        model_overrides=(f"model.audio_lookahead={lookahead}",),
    )
    out = bench_config(preset, options)
    return {
        "lookahead_ms": out["extra"]["lookahead_ms"],
        "p50": out["figures"]["stream_latency_ms"]["p50"],
        "p95": out["figures"]["stream_latency_ms"]["p95"],
        "e2e_fps": out["figures"]["fps"]["e2e_b1"],
        "budget": out["figures"]["frame_budget_used"],
    }


def algorithmic_ms(lookahead: int) -> float:
    """Audio a frame waits for beyond its own time (StreamingSession.lookahead_s, without a session)."""
    from apb2face.data import audio as A
    from apb2face.inference.streaming_features import samples_for_row

    return 1000 * samples_for_row(lookahead - 1) / A.SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="one per look-ahead (repeat)")
    parser.add_argument("--data", required=True, help="dataset whose held-out split is measured")
    parser.add_argument("--frames", type=int, default=60, help="first N frames of each held-out clip (default 60)")
    parser.add_argument(
        "--latency",
        default="default@128,realtime@256",
        help="PRESET@SIZE list whose live latency is measured per look-ahead (default: the demo's architecture at "
        "128 px and the real-time preset at 256 px; '' = none, the quality columns only)",
    )
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=8.0, help="live audio per latency figure")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    targets = [target for target in args.latency.split(",") if target]
    rows = []
    for checkpoint in args.checkpoint:
        lookahead = load_config(checkpoint)[0].audio_lookahead
        row = {"checkpoint": checkpoint, "L": lookahead, **quality(checkpoint, args.data, args.frames)}
        for target in targets:
            preset, size = target.split("@")
            row[target] = latency(lookahead, preset, int(size), args.chunk_ms, args.seconds)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(
        "\n| look-ahead L | algorithmic | "
        + " | ".join(f"live p50 / p95, {t.replace('@', ' ')} px (budget used)" for t in targets)
        + " | lip-sync r (best lag) | median lag | mouth r vs real (lag 0) | M-LMD |"
    )
    print("|---:|---:|" + "---:|" * len(targets) + "---:|---:|---:|---:|")
    for r in rows:
        live = " | ".join(f"{r[t]['p50']:.0f} / {r[t]['p95']:.0f} ms ({r[t]['budget']:.0%})" for t in targets)
        print(
            f"| {r['L']} ({r['L'] * 10} ms) | {algorithmic_ms(r['L']):.1f} ms | {live} "
            f"| {r['lipsync_r']:.2f} (real {r['lipsync_r_real']:.2f}) | {r['median_lag']:+.0f} "
            f"| {r['mouth_r_vs_real']:.2f} | {r['lmd_mouth']:.2f} % |"
        )
    print(f"\n{rows[0]['frames']} held-out frames of {args.data} per checkpoint")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
