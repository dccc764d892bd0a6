"""Decoupling sweeps (the paper's Figure 4): yaw, pitch, roll and eye openness swept one at a time with the others
neutral and silent audio. Writes OUT/decouple.png and OUT/decouple.json with a measured check: the face mesh's pose
(or eye aspect ratio) of the outputs must follow the swept value monotonically (Spearman) while the mouth stays
still (standard deviation of the mouth opening). The exit code is 0 whether or not the check passes; the verdict is
printed and stored.
"""

from __future__ import annotations

import argparse

from apb2face.cli.common import (
    add_allow_unknown_argument,
    add_checkpoint_argument,
    add_device_argument,
    add_output_dir_argument,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--reference", required=True, help="a bundled identity name or a face image")
    add_allow_unknown_argument(parser)
    add_output_dir_argument(parser)
    parser.add_argument("--steps", type=int, default=7, help="values per sweep (default 7)")
    parser.add_argument("--yaw", type=float, default=25.0, help="yaw sweep half-range in degrees (default 25)")
    parser.add_argument("--pitch", type=float, default=15.0, help="pitch sweep half-range in degrees (default 15)")
    parser.add_argument("--roll", type=float, default=15.0, help="roll sweep half-range in degrees (default 15)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apb2face.config import from_dict
    from apb2face.errors import UserError
    from apb2face.evaluation.decouple import DecoupleConfig, decouple, summary_lines
    from apb2face.io import new_output_dir

    cfg = from_dict(
        DecoupleConfig, dict(steps=args.steps, yaw=args.yaw, pitch=args.pitch, roll=args.roll, device=args.device)
    )
    if not Path(args.checkpoint).exists():
        raise UserError("--checkpoint: not found", args.checkpoint)
    with new_output_dir(args.out) as out:
        report = decouple(args.checkpoint, args.reference, out, cfg, allow_unknown=args.allow_unknown)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'decouple.png'} and {out / 'decouple.json'}")
    return 0
