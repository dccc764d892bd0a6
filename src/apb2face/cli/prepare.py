"""Turn real talking-head videos into a dataset: track the face, crop, measure pose/eyes/landmarks, cut into clips.

Inputs are video files or directories (searched recursively for mp4/mov/mkv/webm/avi/mpg/...). Each video is one
identity named after its file unless --identity or --identity-map says otherwise. Audio comes from the video's own
track, a same-named audio file beside it (name.wav, .flac, .m4a, ...) or --audio. Per video, OUT/reports/ gets a
report.json and a contact sheet PNG with landmarks drawn; a summary table is printed at the end.

Exit status: 0 when every video was prepared, 1 when some failed (each failure is one line naming the file; the
others are still prepared), 2 for usage errors (e.g. OUT exists and is not empty).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR", help="video files and/or directories of videos")
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        required=True,
        metavar="DATASET",
        help="output dataset directory (must not exist, or be empty)",
    )
    parser.add_argument("--identity", metavar="NAME", help="one identity for all inputs (default: one per video)")
    parser.add_argument(
        "--identity-map",
        type=Path,
        metavar="FILE",
        help="lines 'PATTERN IDENTITY': videos whose file name matches the glob PATTERN get IDENTITY "
        "(first match wins; others are named after their file)",
    )
    parser.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="audio of the (single) input video, when it is neither in the file nor beside it",
    )
    parser.add_argument("--size", type=int, default=None, help="face crop size in pixels (default: 256)")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="videos prepared in parallel (default 1)")
    parser.add_argument(
        "--split",
        choices=("clip", "time"),
        default=None,
        help="clip: seeded random split by clip (default); time: the last --test-fraction of every "
        "video becomes test clips",
    )
    parser.add_argument("--test-fraction", type=float, default=None, help="fraction held out for test (default 0.2)")
    parser.add_argument("--seed", type=int, default=None, help="split seed (default 0)")
    parser.add_argument("--config", metavar="YAML", help="a YAML file of prepare settings")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set max_clip_seconds=8 (see apb2face.data.prepare.PrepareConfig)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from apb2face import config as config_mod
    from apb2face.data import prepare
    from apb2face.data.video import probe
    from apb2face.io import prepare_output_dir, remove_partial

    overrides = list(args.set)
    for key, value in (
        ("size", args.size),
        ("split", args.split),
        ("test_fraction", args.test_fraction),
        ("seed", args.seed),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = config_mod.load(prepare.PrepareConfig, args.config, overrides)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.audio is not None and not args.audio.is_file():
        raise UserError("audio file not found", args.audio)
    rules = prepare.read_identity_map(args.identity_map) if args.identity_map is not None else None
    videos = prepare.discover_videos(args.inputs)
    if not videos:
        raise UserError(f"no video files found in {' '.join(args.inputs)}")
    jobs = prepare.make_jobs(videos, identity=args.identity, identity_map=rules, audio=args.audio)
    out = prepare_output_dir(args.out)

    total = 0
    for job in jobs:
        try:
            info = probe(job.path)
            total += int(info.duration * cfg.fps) if info.duration else info.num_frames
        except UserError:
            pass  # reported when the job runs
    bar = tqdm(total=total or None, unit="frame", desc=f"prepare {len(jobs)} video(s)", disable=None)
    try:
        results = prepare.run_jobs(jobs, out, cfg, workers=args.workers, progress=bar.update)
    except BaseException:
        bar.close()
        remove_partial(out)
        raise
    bar.close()
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"apb2face prepare: error: {r.error}", file=sys.stderr)
    if len(failed) == len(results):
        remove_partial(out)
        print(f"apb2face prepare: no video could be prepared; nothing written to {out}", file=sys.stderr)
        return 1
    summary = prepare.finalize_dataset(out, results, cfg)
    print(prepare.summary_table(results))
    splits = ", ".join(f"{k} {v} clips" for k, v in summary["splits"].items())
    print(f"wrote {out}: {len(summary['identities'])} identities, {splits}; reports in {out / prepare.REPORTS_DIR}")
    if failed:
        print(f"{len(failed)} of {len(results)} videos failed", file=sys.stderr)
        return 1
    return 0
