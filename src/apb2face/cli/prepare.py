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
from typing import TYPE_CHECKING

from apb2face.cli.common import add_output_dir_argument
from apb2face.errors import UserError

if TYPE_CHECKING:
    from apb2face.data.prepare import PrepareConfig, VideoJob
    from apb2face.inference.listen import FuserListener

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="VIDEO_OR_DIR | key=value",
        help="video files and/or directories of videos; key=value words override a setting, as with every "
        "command (e.g. max_clip_seconds=8; see apb2face.data.prepare.PrepareConfig)",
    )
    add_output_dir_argument(parser, "output dataset directory", metavar="DATASET")
    parser.add_argument("--identity", metavar="NAME", help="one identity for all inputs (default: one per video)")
    parser.add_argument(
        "--identity-map",
        type=Path,
        metavar="FILE",
        help="lines 'PATTERN IDENTITY': videos whose file name matches the glob PATTERN get IDENTITY "
        "(first match wins; others are named after their file)",
    )
    parser.add_argument(
        "--people",
        metavar="NAME,NAME,... | auto",
        help="the video shows several people: name each face left to right, or 'auto' for <identity>_face0, "
        "_face1, ...; each face gets only the stretches where it speaks (active-speaker detection). An identity "
        "map line 'PATTERN NAME,NAME' does the same for the videos it matches",
    )
    parser.add_argument(
        "--listen-with",
        metavar="CHECKPOINT | demo | loudness",
        default="demo",
        help="with --people: the speaker is the face whose mouth does what this checkpoint's fuser draws for the "
        "audio (default: demo, the bundled checkpoint); 'loudness': the face whose mouth follows the audio's "
        "loudness (no checkpoint)",
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
    parser.set_defaults(overrides=[])  # key=value words given after the options land here (see cli.main.parse)


class _NothingPrepared(Exception):
    """Every video failed: the output folder is removed (nothing of the user's was in it) and the exit status is 1."""


def run(args: argparse.Namespace) -> int:
    from apb2face import config as config_mod
    from apb2face.data import prepare
    from apb2face.io import new_output_dir

    inputs, overrides = config_mod.split_overrides(args.inputs)
    overrides += args.overrides
    if not inputs:
        raise UserError("no video given (key=value words are setting overrides)")
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
    videos = prepare.discover_videos(inputs)
    if not videos:
        raise UserError(f"no video files found in {' '.join(inputs)}")
    jobs = prepare.make_jobs(
        videos, identity=args.identity, identity_map=rules, audio=args.audio, people=_people(args.people)
    )
    listener = _listener(args.listen_with, jobs)
    try:
        with new_output_dir(args.out) as out:
            return _prepare_into(out, jobs, cfg, args.workers, listener)
    except _NothingPrepared:
        print(f"apb2face prepare: no video could be prepared; nothing written to {args.out}", file=sys.stderr)
        return 1


def _listener(value: str, jobs: list[VideoJob]) -> FuserListener | None:
    """--listen-with: the fuser that tells the active-speaker detection what mouth the audio calls for (None: no
    video has several people, or 'loudness')."""
    if value == "loudness" or not any(job.scene for job in jobs):
        return None
    from apb2face.inference.listen import FuserListener

    if value == "demo":
        return FuserListener(None)
    if not Path(value).is_dir():
        raise UserError("--listen-with: not a checkpoint folder (give a checkpoint, demo or loudness)", value)
    return FuserListener(value)


def _prepare_into(
    out: Path, jobs: list[VideoJob], cfg: PrepareConfig, workers: int, listener: FuserListener | None = None
) -> int:
    """Prepare every job into `out`, print each failure as one line and the summary table; the exit status."""
    from tqdm import tqdm

    from apb2face.data import prepare

    with tqdm(
        total=_expected_frames(jobs, cfg.fps) or None, unit="frame", desc=f"prepare {len(jobs)} video(s)", disable=None
    ) as bar:
        results = prepare.run_jobs(jobs, out, cfg, workers=workers, progress=bar.update, listener=listener)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"apb2face prepare: error: {r.error}", file=sys.stderr)
    if len(failed) == len(results):
        raise _NothingPrepared
    summary = prepare.finalize_dataset(out, results, cfg)
    print(prepare.summary_table(results))
    turns = prepare.turns_table(results)
    if turns:
        print(turns)
    splits = ", ".join(f"{k} {v} clips" for k, v in summary["splits"].items())
    print(f"wrote {out}: {len(summary['identities'])} identities, {splits}; reports in {out / prepare.REPORTS_DIR}")
    if failed:
        print(f"{len(failed)} of {len(results)} videos failed", file=sys.stderr)
        return 1
    return 0


def _people(value: str | None) -> list[str] | None:
    """--people: None (one person per video), [] (several, named automatically) or their names."""
    if value is None:
        return None
    if value == "auto":
        return []
    names = [name.strip() for name in value.split(",")]
    if any(not name for name in names):
        raise UserError(f"--people: an empty name in {value!r} (give NAME,NAME,... or auto)")
    return names


def _expected_frames(jobs: list[VideoJob], fps: float) -> int:
    """Frames the progress bar expects (videos that cannot be probed count nothing: they fail when they run)."""
    from apb2face.data.video import probe

    total = 0
    for job in jobs:
        try:
            info = probe(job.path)
            total += int(info.duration * fps) if info.duration else info.num_frames
        except UserError:
            pass  # reported when the job runs
    return total
