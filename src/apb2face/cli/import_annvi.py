"""Convert the official AnnVI dataset layout (APB2Face / APB2FaceV2) into an apb2face dataset.

ROOT holds label/<idt>.txt, landmark/<idt>.txt (106 points, 3 pose, 2 blink per frame), audio/<idt>.m4a and either
feature/<idt>/256_image_crop/ (the official crops), feature/<idt>/image/ or video/<idt>.mp4. Landmarks are kept as
the 106-point scheme ("face++-106"); pose is reordered to yaw, pitch, roll in degrees (see --pose-order and
--pose-scale: the official data never documented its units); eyes become openness 0..1 per identity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apb2face.cli.common import add_output_dir_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, metavar="ROOT", help="AnnVI directory (label/, landmark/, audio/, ...)")
    add_output_dir_argument(parser, "output dataset directory", metavar="DATASET")
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels (default 256)")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the annotations (default: from video/<idt>.mp4, else 25)",
    )
    parser.add_argument(
        "--pose-order",
        default="pitch,roll,yaw",
        help="meaning of the 3 stored pose numbers in order (default pitch,roll,yaw: the official demo's naming)",
    )
    parser.add_argument(
        "--pose-scale",
        type=float,
        default=None,
        help="degrees per stored pose unit (default: radians if every |value| <= pi/2, else "
        "degrees); negative flips the signs",
    )
    parser.add_argument("--test-fraction", type=float, default=0.2, help="clips held out per identity (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from apb2face.data.annvi import AnnviConfig, import_annvi
    from apb2face.errors import UserError
    from apb2face.io import new_output_dir

    try:
        cfg = AnnviConfig(
            size=args.size,
            fps=args.fps,
            pose_order=tuple(s.strip() for s in args.pose_order.split(",")),
            pose_scale=args.pose_scale,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not args.root.is_dir():
        raise UserError("not a directory", args.root)
    with new_output_dir(args.out) as out, tqdm(unit="frame", desc="import-annvi", disable=None) as bar:
        summary = import_annvi(args.root, out, cfg, progress=bar.update)
    for idt, facts in summary["identities"].items():
        print(
            f"{idt}: {facts['clips']} clips from {facts['frames_from']}, audio {facts['audio']}"
            + (f", {facts['frames_dropped']} frames in too-short runs dropped" if facts["frames_dropped"] else "")
        )
    print(
        f"wrote {out}: pose read as {'/'.join(summary['pose_order'])} in {summary['pose_units']}; "
        + ", ".join(f"{k} {v} clips" for k, v in summary["splits"].items())
    )
    return 0
