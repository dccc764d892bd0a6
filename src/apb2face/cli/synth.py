"""Render the built-in multi-person talking-face dataset: N distinct people, each speaking M espeak-ng sentences.

Writes an apb2face dataset (docs/dataset-format.md) into --out DIR (the positional OUT is the older spelling of the
same), one MP4 (H.264 + AAC) per clip under DIR/videos, a contact sheet of the identities (DIR/contact_sheet.png) and
their descriptions (DIR/identities.json). The same --seed gives byte-identical files, MP4s included, whatever
--workers.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="DIR", help="output directory (must not exist, or be empty)")
    parser.add_argument("out_positional", nargs="?", type=Path, metavar="OUT", help="the same as --out DIR")
    parser.add_argument("--identities", type=int, default=6, help="number of people (default 6)")
    parser.add_argument("--clips-per-identity", type=int, default=10, help="sentences per person (default 10)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fps", type=float, default=25.0, help="video frame rate (default 25)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="clips per identity held out (default 0.2)")
    parser.add_argument("--no-videos", action="store_true", help="skip the per-clip MP4 files")
    parser.add_argument(
        "--tts",
        choices=("espeak", "flite"),
        default="espeak",
        help="speech engine: espeak-ng (default) or CMU Flite (Debian package flite; voices from real recordings)",
    )


def output_dir(args: argparse.Namespace) -> Path:
    """The output folder, given as --out DIR or (the older spelling) as the positional OUT."""
    if args.out is None and args.out_positional is None:
        raise UserError("give the output directory: apb2face synth --out DIR")
    if args.out is not None and args.out_positional is not None and args.out != args.out_positional:
        raise UserError(f"two output directories given ({args.out_positional} and --out {args.out}); give one")
    return args.out if args.out is not None else args.out_positional


def run(args: argparse.Namespace) -> int:
    from apb2face.config import from_dict
    from apb2face.data.synth import SynthConfig, generate
    from apb2face.io import new_output_dir

    target = output_dir(args)
    cfg = from_dict(
        SynthConfig,
        dict(
            identities=args.identities,
            clips_per_identity=args.clips_per_identity,
            size=args.size,
            seed=args.seed,
            fps=args.fps,
            workers=args.workers,
            test_fraction=args.test_fraction,
            videos=not args.no_videos,
            tts=args.tts,
        ),
    )
    start = time.perf_counter()
    with new_output_dir(target) as out:
        summary = generate(out, cfg)
    log.info(
        "wrote %d clips (%d frames, %d identities) to %s in %.1f s",
        summary["clips"],
        summary["frames"],
        summary["identities"],
        out,
        time.perf_counter() - start,
    )
    return 0
