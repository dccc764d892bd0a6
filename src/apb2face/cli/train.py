"""Train APB2Face (fuser + generator end to end, with a conditional PatchGAN) on an apb2face dataset.

Writes RUN/metrics.jsonl, TensorBoard logs (RUN/tb), image grids (RUN/images), training checkpoints
(RUN/checkpoints) and release checkpoints (RUN/latest, RUN/final). Runs under `torchrun --nproc_per_node=K` too.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset directory (apb2face format); on --resume defaults to the run's")
    parser.add_argument("--config", help="preset name (paper, default, tiny, ...) or a YAML file [default]")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument(
        "--max-steps", type=int, help="stop after this global step (the LR schedule still follows train.steps)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=1e-4")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apb2face.config import load
    from apb2face.errors import UserError
    from apb2face.training.checkpoint import RUN_FILE, load_run_config
    from apb2face.training.config import RunConfig
    from apb2face.training.trainer import Trainer

    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.resume and (Path(args.out) / RUN_FILE).is_file():
        if args.config:
            raise UserError("--config cannot change a run being resumed (use key=value overrides)")
        run_config, data = load_run_config(Path(args.out), args.overrides)
        data = args.data or data
    else:
        if not args.data:
            raise UserError("--data is required")
        run_config = load(RunConfig, args.config or "default", args.overrides)
        data = args.data
    last = Trainer(run_config, data, args.out, resume=args.resume, max_steps=args.max_steps).setup().fit()
    if last:
        print(
            f"step {last['step']}: loss_g {last['loss_g']:.4f} loss_d {last['loss_d']:.4f} "
            f"l1 {last['loss_l1']:.4f} geometry {last['loss_geometry']:.4f} -> {args.out}"
        )
    return 0
