"""Cross-identity reenactment (the paper's Figure 2): rows are the checkpoint's reference identities, columns the
dataset's driving identities (a held-out clip of each: its audio, pose and eyes). Writes OUT/grid.png (the moment
of loudest speech of every column), OUT/grid.mp4 (the matrix in motion, silent: each column speaks a different
clip), OUT/columns/<driver>.mp4 (every reference driven by one clip, with that clip's audio) and OUT/grid.json.
"""

from __future__ import annotations

import argparse

from apb2face.cli.common import add_checkpoint_argument, add_device_argument, add_output_dir_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--data", required=True, help="apb2face dataset with the driving identities")
    add_output_dir_argument(parser)
    parser.add_argument("--split", default="test", help="split the driving clips come from (default test)")
    parser.add_argument("--max-frames", type=int, default=125, help="frames per driving clip (default 125 = 5 s)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apb2face.config import from_dict
    from apb2face.errors import UserError
    from apb2face.evaluation.grid import GridConfig, cross_reenact
    from apb2face.io import new_output_dir

    config = from_dict(GridConfig, dict(split=args.split, max_frames=args.max_frames, device=args.device))
    for flag, path in (("--checkpoint", args.checkpoint), ("--data", args.data)):
        if not Path(path).exists():
            raise UserError(f"{flag}: not found", path)
    with new_output_dir(args.out) as out:
        summary = cross_reenact(args.checkpoint, args.data, out, config)
    print(
        f"{len(summary['references'])} references x {len(summary['drivers'])} driving identities -> "
        f"{out / 'grid.png'}, {out / 'grid.mp4'} (silent), {out / 'columns'}/<driver>.mp4 (with audio)"
    )
    return 0
