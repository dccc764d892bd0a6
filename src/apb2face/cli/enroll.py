"""Add people to a checkpoint from their own videos: the new checkpoint renders them and every person the base had.

    apb2face enroll anna.mp4 --name anna --out ckpt-anna
    apb2face enroll anna.mp4 ben.mp4 --name anna --name ben --out ckpt-team --minutes 30
    apb2face enroll videos/ --identity-map people.txt --out ckpt-team --base ckpt-anna
    apb2face enroll interview.mp4 --name anna --name ben --out ckpt-team   # both in one video, left to right

One video with several --name values (or an identity-map line 'PATTERN NAME,NAME') shows several people: each face,
left to right, becomes its own person, trained only on the stretches where that face speaks (active-speaker
detection, as `prepare --people`).

The last 20 % of every video is held out; the rest fine-tunes the base checkpoint (default: the demo checkpoint)
mixed with a replay of the base's own data, so its people do not drift. OUT gets the checkpoint, a model card
(README.md) with the held-out result next to the real footage's, enrollment.json, strips/<name>.png (reference |
generated | real), sample.mp4 and the new people's prepared data (a later enrolment replays it).

Ctrl-C stops after the step in progress and keeps the state in OUT.enroll-work; the same command plus --resume
continues exactly. Exit status: 0 when every video was enrolled, 1 when some were refused (each named on one line)
and the rest enrolled, 2 when nothing could be (one line saying why), 130/143 when stopped by a signal.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from apb2face.cli.common import checkpoint_path
from apb2face.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="VIDEO_OR_DIR | key=value",
        help="videos of the people (files or folders); key=value words set enrolment settings "
        "(apb2face.enrollment.EnrollConfig, e.g. new_share=0.6) or training ones (train.lr=5e-5)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="NAME",
        help="the person's name: one for all videos, or one per video in order; several for one video name the "
        "people in it, left to right",
    )
    parser.add_argument("--identity-map", type=Path, metavar="FILE", help="lines 'PATTERN NAME' (as in prepare)")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="CKPT", help="new checkpoint directory")
    parser.add_argument(
        "--base", type=checkpoint_path, metavar="CKPT", help="checkpoint to start from (default: the demo one)"
    )
    parser.add_argument(
        "--base-data",
        type=Path,
        action="append",
        default=[],
        metavar="DATASET",
        help="the base's training data to replay, when it is at hand (default: found again from the base's "
        "config.json, regenerated once for the built-in people)",
    )
    parser.add_argument("--minutes", type=float, help="wall-clock budget of the fine-tune (default 20)")
    parser.add_argument("--steps", type=int, help="a fixed number of training steps instead of --minutes")
    parser.add_argument("--resume", action="store_true", help="continue an enrolment stopped by Ctrl-C")
    parser.set_defaults(overrides=[])


def run(args: argparse.Namespace) -> int:
    from apb2face import config as config_mod
    from apb2face.data import prepare
    from apb2face.enrollment import EnrollConfig, EnrollRequest, enroll, work_dir
    from apb2face.inference.pipeline import default_checkpoint

    inputs, overrides = config_mod.split_overrides(args.inputs)
    overrides += args.overrides
    train_overrides = [o for o in overrides if o.startswith("train.")]
    settings = [o for o in overrides if not o.startswith("train.")]
    settings += [f"{k}={v}" for k, v in (("minutes", args.minutes), ("steps", args.steps)) if v is not None]
    cfg = config_mod.load(EnrollConfig, None, settings)
    base = args.base or default_checkpoint()
    if base is None:
        raise UserError("no --base given and the demo checkpoint is not installed")
    videos = prepare.discover_videos(inputs)
    if not videos:
        raise UserError(f"no video files found in {' '.join(inputs)}")
    jobs = _jobs(videos, args, prepare)
    request = EnrollRequest(jobs, args.out, Path(base), args.base_data, train_overrides)
    result = enroll(request, cfg, resume=args.resume)
    if result.stopped_by:
        print(
            f"stopped by {result.stopped_by}; the state is in {work_dir(args.out)}: run the same command plus "
            "--resume to continue",
            file=sys.stderr,
        )
        return 128 + int(getattr(signal, result.stopped_by))
    for line in result.failures:
        print(f"apb2face enroll: not enrolled: {line}", file=sys.stderr)
    print(_result_lines(result.summary, args.out))
    return 1 if result.failures else 0


def _jobs(videos: list[Path], args: argparse.Namespace, prepare) -> list:  # noqa: ANN001
    """One prepare job per video, named by --name (one for all, or one per video) or --identity-map."""
    from apb2face.data.format import check_name

    names = args.name
    if names and args.identity_map:
        raise UserError("give --name or --identity-map, not both")
    if not names and not args.identity_map:
        raise UserError("name the person: --name NAME (or --identity-map FILE for several people)")
    if len(names) > 1 and len(videos) > 1 and len(names) != len(videos):
        raise UserError(
            f"{len(names)} --name values for {len(videos)} videos: give one name, one per video, or several for "
            "one video of several people"
        )
    for name in names:
        try:
            check_name(name, "person")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if prepare.safe_name(name) != name:
            raise UserError(f"name {name!r} may use only letters, digits, '_', '-', '.'")
    if args.identity_map:
        return prepare.make_jobs(videos, identity_map=prepare.read_identity_map(args.identity_map))
    if len(names) == 1:
        return prepare.make_jobs(videos, identity=names[0])
    if len(videos) == 1:  # one video of several people, named left to right
        return prepare.make_jobs(videos, people=names)
    return [job for video, name in zip(videos, names) for job in prepare.make_jobs([video], identity=name)]


def _result_lines(summary: dict, out: Path) -> str:
    new = summary["measured"]["new"]
    real = summary["measured"]["real"]
    parts = [
        f"SSIM {new['ssim']['mean']:.3f}",
        f"lip-sync r {_num(new['lipsync_corr']['mean'])} (real {_num((real.get('lipsync_corr') or {}).get('mean'))})",
        f"CPBD {_num(new['cpbd']['mean'], '.3f')} (real {_num((real.get('cpbd') or {}).get('mean'), '.3f')})",
        f"blink F1 {_num(new['blink_f1']['mean'])}",
    ]
    return f"enrolled {', '.join(summary['people'])} -> {out} (held out: {'; '.join(parts)}; card: {out}/README.md)"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)
