"""Train APB2Face (fuser + generator end to end, with a conditional PatchGAN) on an apb2face dataset.

Writes RUN/metrics.jsonl, TensorBoard logs (RUN/tb), image grids (RUN/images), training checkpoints
(RUN/checkpoints) and release checkpoints (RUN/latest, RUN/final). Runs under `torchrun --nproc_per_node=K` too.

Stopping and resuming: Ctrl-C (or SIGTERM) stops after the step in progress, saves a checkpoint and exits with
status 130 (143); run the same command plus --resume to continue exactly where it stopped. --max-steps and
--max-minutes end a run early the same way, with RUN/final written. A run stopped before its first checkpoint
starts again from step 0. The progress bar counts the steps of this invocation: the schedule's end (or --max-steps)
minus the step resumed from.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--data",
        action="append",
        help="dataset directory (apb2face format); repeat it to train on several together (e.g. the same people in "
        "other voices); on --resume defaults to the run's",
    )
    parser.add_argument(
        "--config",
        help="preset name (paper, default, tiny, ...) or a YAML file [default]; with --resume it must resolve to "
        "the run's own config (it may be repeated, a different one is refused)",
    )
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument(
        "--max-steps", type=int, help="stop after this global step (the LR schedule still follows train.steps)"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        metavar="N",
        help="wall-clock budget: stop when N minutes have gone into the training loop of this invocation "
        "(dataset loading and set-up not counted), saving a checkpoint and RUN/final; the LR schedule still "
        "follows train.steps unless --fit-schedule",
    )
    parser.add_argument(
        "--fit-schedule",
        action="store_true",
        help="with --max-minutes: fit the LR schedule's length (train.steps) to the steps the budget allows, "
        "re-estimated after every step, so the LR decays to 0 when the time is up (equal-time comparisons; "
        "such a run cannot be resumed)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=1e-4")


def run(args: argparse.Namespace) -> int:
    from apb2face.errors import UserError
    from apb2face.training.trainer import Trainer

    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.max_minutes is not None and not 0 < args.max_minutes < float("inf"):
        raise UserError(f"--max-minutes must be a positive number, got {args.max_minutes}")
    if args.fit_schedule and args.max_minutes is None:
        raise UserError("--fit-schedule needs --max-minutes")
    run_config, data, repeats = _run_config(args)
    trainer = Trainer(
        run_config,
        data,
        args.out,
        data_repeats=repeats,
        resume=args.resume,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        fit_schedule=args.fit_schedule,
    )
    last = trainer.setup().fit()
    if trainer.stopped_by and trainer.step < trainer.stop:  # a signal on the last step found the run complete
        print(
            f"stopped by {trainer.stopped_by} at step {trainer.step} (checkpoint saved); "
            f"continue with the same command plus --resume"
        )
        return 128 + int(getattr(signal, trainer.stopped_by))
    if last:
        print(
            f"step {last['step']}: loss_g {last['loss_g']:.4f} loss_d {last['loss_d']:.4f} "
            f"l1 {last['loss_l1']:.4f} geometry {last['loss_geometry']:.4f} -> {args.out}"
        )
    return 0


def _run_config(args: argparse.Namespace):  # noqa: ANN202
    """The RunConfig, dataset(s) and their repeat counts of this invocation. On --resume: the run's own config
    with the overrides applied; a --config given with it must resolve (with the same overrides) to that config, else
    the differing keys are named."""
    from apb2face.config import load
    from apb2face.errors import UserError
    from apb2face.training.checkpoint import RUN_FILE, config_differences, load_run_config
    from apb2face.training.config import RunConfig

    if args.resume and (Path(args.out) / RUN_FILE).is_file():
        described = load_run_config(Path(args.out), args.overrides)
        run_config = described.config
        if args.config:
            differences = config_differences(run_config, load(RunConfig, args.config, args.overrides))
            if differences:
                shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
                raise UserError(
                    f"--config {args.config} differs from the run being resumed ({shown}); resume without --config, "
                    "changing keys with key=value overrides"
                )
        if args.data:
            return run_config, _one_or_several(args.data), None
        return run_config, described.data, described.data_repeats
    if not args.data:
        raise UserError("--data is required")
    return load(RunConfig, args.config or "default", args.overrides), _one_or_several(args.data), None


def _one_or_several(data: list[str]) -> str | list[str]:
    """One --data as the path itself (a run on one dataset records it as before), several as a list."""
    return data[0] if len(data) == 1 else data
