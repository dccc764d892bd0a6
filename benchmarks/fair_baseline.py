"""A fair baseline: train the official `paper` configuration and our `default` on the same built-in data for the same
wall-clock budget, evaluate both the same way, print one table.

    .venv/bin/python benchmarks/fair_baseline.py --minutes 15 --out outputs/fair_baseline
    .venv/bin/python benchmarks/fair_baseline.py --minutes 1 --identities 2 --clips-per-identity 2 --size 64 \
        --set paper:model.image_size=64 --set default:model.image_size=64 --eval-max-frames 16   # smoke run

Protocol:
* Data: `apb2face synth` (seeded) unless --data is given; every config trains on its train split.
* Budget: each config trains for --minutes of wall clock (the training loop only: dataset loading and model set-up
  are not counted), as `apb2face train --max-minutes N --fit-schedule`. The number of steps is not fixed: after
  every step the step time so far is measured and the LR schedule (constant, then linear decay to 0 as the paper) is
  fitted to the steps the budget allows, so both runs end their schedule when their time is up (overshoot: at most
  one step and the final checkpoint write).
* Evaluation: `apb2face evaluate` protocol on the test split, at one common resolution (--eval-size, default the
  smallest model resolution: a 256 px model's frames are downscaled, which only helps it), first
  --eval-max-frames frames of each clip.
Long jobs: run it under `nice -n 10`; it uses torch's default threads unless --threads.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("fair_baseline")


def train_for(config: str, overrides: list[str], data: Path, run_dir: Path, minutes: float) -> dict:
    """Train `config` for `minutes` of training loop with the LR schedule fitted to the steps the budget allows
    (`apb2face train --max-minutes N --fit-schedule`), so every run ends its decay when its time is up."""
    from apb2face.config import load
    from apb2face.training.config import RunConfig
    from apb2face.training.trainer import Trainer

    run = load(
        RunConfig,
        config,
        overrides + ["train.steps=100000000", "train.ckpt_interval=100000000", "train.image_interval=100000000"],
    )
    trainer = Trainer(run, data, run_dir, max_minutes=minutes, fit_schedule=True)
    t_setup = time.perf_counter()
    trainer.setup()
    setup_s = time.perf_counter() - t_setup
    trainer.fit()
    params = sum(p.numel() for p in trainer.model.parameters())
    return {
        "config": config,
        "overrides": overrides,
        "steps": trainer.step,
        "loop_seconds": round(trainer.loop_seconds, 1),
        "setup_seconds": round(setup_s, 1),
        "image_size": run.model.image_size,
        "batch_size": run.train.batch_size,
        "generator": run.model.generator,
        "params_m": round(params / 1e6, 3),
        "checkpoint": str(run_dir / "final"),
    }


ROWS = (
    ("ssim", "SSIM ↑", "{:.3f}"),
    ("psnr", "PSNR dB ↑", "{:.2f}"),
    ("lmd_mouth", "M-LMD % ↓", "{:.2f}"),
    ("lmd_face", "F-LMD % ↓", "{:.2f}"),
    ("detection_rate", "DR % ↑", "pct"),
    ("pose_error_deg", "pose err ° ↓", "{:.2f}"),
    ("blink_f1", "blink F1 ↑", "{:.2f}"),
    ("lipsync_corr", "lip sync r ↑", "{:.2f}"),
    ("cpbd", "CPBD ↑", "{:.3f}"),
    ("fid", "FID ↓", "{:.1f}"),
)


def _fmt(value, spec: str) -> str:  # noqa: ANN001
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if spec == "pct" else spec.format(value)


def table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    facts = (
        ("image size", lambda r: str(r["train"]["image_size"])),
        ("batch", lambda r: str(r["train"]["batch_size"])),
        ("params (M)", lambda r: f"{r['train']['params_m']:.3f}"),
        ("train steps", lambda r: str(r["train"]["steps"])),
        ("train loop (s)", lambda r: f"{r['train']['loop_seconds']:.0f}"),
    )
    for label, get in facts:
        lines.append(f"| {label} | " + " | ".join(get(results[n]) for n in names) + " |")
    for key, label, spec in ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(results[n]["report"][key]["mean"], spec) for n in names) + " |")
    gt = results[names[0]]["report"]["ground_truth"]
    copy = results[names[0]]["report"]["copy_reference"]
    lines.append("")
    lines.append(
        f"copying the reference (the floor to beat): SSIM {copy['ssim']['mean']:.3f}, "
        f"PSNR {copy['psnr']['mean']:.2f} dB"
    )
    lines.append(
        "ground truth through the same tools: "
        + ", ".join(f"{label.split(' ')[0]} {_fmt(gt[key]['mean'], spec)}" for key, label, spec in ROWS if key in gt)
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget per config (default 15)")
    p.add_argument("--configs", nargs="+", default=["paper", "default"], help="presets to compare")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CONFIG:key=value",
        help="an override for one config, e.g. paper:model.image_size=128 (repeatable)",
    )
    p.add_argument("--data", help="an existing dataset (default: render one with apb2face synth into OUT/data)")
    p.add_argument("--identities", type=int, default=6)
    p.add_argument("--clips-per-identity", type=int, default=10)
    p.add_argument("--size", type=int, help="synth frame size (default: the largest model resolution)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-max-frames", type=int, default=50, help="frames per test clip evaluated (default 50)")
    p.add_argument("--eval-size", type=int, help="metric resolution (default: the smallest model resolution)")
    p.add_argument("--no-fid", action="store_true", help="skip FID")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--out", default="outputs/fair_baseline", help="work and result directory (must be new or empty)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from apb2face.errors import UserError
    from apb2face.io import prepare_output_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        out = prepare_output_dir(args.out)
        overrides = overrides_by_config(args.set, args.configs)
        sizes = model_sizes(args.configs, overrides)
        data = dataset(args, out, max(sizes.values()))
        eval_size = args.eval_size or min(sizes.values())
        results = {
            config: train_and_evaluate(config, overrides[config], data, out, eval_size, args)
            for config in args.configs
        }
    except UserError as exc:
        print(f"fair_baseline: error: {exc}", file=sys.stderr)
        return 2
    write_summary(out, results, args, data, eval_size)
    return 0


def overrides_by_config(items: list[str], configs: list[str]) -> dict[str, list[str]]:
    """--set CONFIG:key=value items, grouped by config."""
    from apb2face.errors import UserError

    overrides: dict[str, list[str]] = {c: [] for c in configs}
    for item in items:
        name, _, kv = item.partition(":")
        if name not in overrides or "=" not in kv:
            raise UserError(f"--set {item!r}: expected CONFIG:key=value with CONFIG in {configs}")
        overrides[name].append(kv)
    return overrides


def model_sizes(configs: list[str], overrides: dict[str, list[str]]) -> dict[str, int]:
    from apb2face.config import load
    from apb2face.training.config import RunConfig

    return {c: load(RunConfig, c, overrides[c]).model.image_size for c in configs}


def dataset(args: argparse.Namespace, out: Path, largest_size: int) -> Path:
    """--data checked, or a seeded `apb2face synth` dataset rendered into OUT/data."""
    if args.data:
        from apb2face.data.format import Dataset

        Dataset(args.data)
        return Path(args.data)
    from apb2face.data.synth import SynthConfig, generate

    data = out / "data"
    t = time.perf_counter()
    generate(
        data,
        SynthConfig(
            identities=args.identities,
            clips_per_identity=args.clips_per_identity,
            size=args.size or largest_size,
            seed=args.seed,
            videos=False,
        ),
    )
    log.info("synth: %.0f s", time.perf_counter() - t)
    return data


def train_and_evaluate(
    config: str, overrides: list[str], data: Path, out: Path, eval_size: int, args: argparse.Namespace
) -> dict:
    from apb2face.evaluation.evaluate import EvalConfig, evaluate

    name = Path(config).stem  # a preset's name, or a YAML file's
    log.info("== training %s for %.1f min", config, args.minutes)
    train = train_for(config, overrides, data, out / "runs" / name, args.minutes)
    log.info("== evaluating %s (%d steps)", config, train["steps"])
    eval_config = EvalConfig(
        max_frames_per_clip=args.eval_max_frames, eval_size=eval_size, fid_weights="none" if args.no_fid else None
    )
    report = evaluate(train["checkpoint"], data, out / "eval" / name, eval_config).report
    return {"train": train, "report": report}


def write_summary(out: Path, results: dict[str, dict], args: argparse.Namespace, data: Path, eval_size: int) -> None:
    """OUT/fair_baseline.json and .md, and the table on stdout."""
    import torch

    from apb2face.io import write_json

    text = table(results)
    first = results[args.configs[0]]["report"]
    summary = {
        "minutes_per_config": args.minutes,
        "data": str(data),
        "eval_size": eval_size,
        "copy_reference": {key: row["mean"] for key, row in first["copy_reference"].items()},
        "eval_max_frames_per_clip": args.eval_max_frames,
        "torch_threads": torch.get_num_threads(),
        "results": {
            n: {"train": r["train"], "metrics": {k: r["report"][k]["mean"] for k, _, _ in ROWS}}
            for n, r in results.items()
        },
    }
    write_json(out / "fair_baseline.json", summary)
    (out / "fair_baseline.md").write_text(
        f"Same data ({data}), {args.minutes:g} min of training each, metrics at {eval_size} px on the test split "
        f"(first {args.eval_max_frames} frames per clip), torch threads {torch.get_num_threads()}.\n\n{text}\n"
    )
    print(f"\nfair baseline: {args.minutes:g} min each, metrics at {eval_size} px\n")
    print(text)
    print(f"\n(details: {out / 'fair_baseline.json'}, per-config reports in {out / 'eval'})")


if __name__ == "__main__":
    raise SystemExit(main())
