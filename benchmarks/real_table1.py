"""The paper's Table 1 on real people: prepare real talking-head clips with a time split, train our default config
within a stated budget, evaluate per person.

    nice -n 10 .venv/bin/python benchmarks/real_table1.py --minutes 60 --out outputs/real_table1

Steps (each a normal apb2face command, so every step can be rerun by hand):
1. `apb2face prepare` the clips listed in PEOPLE from ../shared/data/real (9 people, 10 videos, all with their own
   synchronous audio; two Obama clips are one identity) with `--split time`: the last 20 % of every video is test.
2. Train `--config` (default `default`) on the train split for --minutes of wall clock (the fair-baseline budget
   trainer: the LR schedule is fitted to the steps the budget allows); on a GPU when torch sees one.
3. `apb2face evaluate` on the test split: per-person SSIM, PSNR, M-/F-LMD, detection rate, pose error, blink F1,
   lip-sync r, CPBD, FID.
Writes OUT/real_table1.md (the per-person table, budget, steps, data sizes) and OUT/real_table1.json. Frames of these
people (strips, contact sheets) stay in OUT, which is outside the repository's tracked files: only numbers go into
docs/results.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger("real_table1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "real"
# file -> identity; every clip has synchronous speech (MANIFEST.md verdict SYNC) and at least 8 s of footage, so the
# last 20 % still holds a 1.6 s test clip. Paired .wav files beside the StyleTalk videos are found by `prepare`.
PEOPLE = {
    "sadtalker_hdtf_aoc.mp4": "aoc",
    "edtalk_hdtf_tedlieu.mp4": "tedlieu",
    "edtalk_obama.mp4": "obama",
    "styletalk_obama_clip1.mp4": "obama",
    "styletalk_kristinoem.mp4": "kristinoem",
    "styletalk_feifeili_clip1.mp4": "feifeili",
    "liveportrait_d9_man_glasses.mp4": "man_glasses",
    "dfrf_cnn_anchor.mp4": "cnn_anchor",
    "dfrf_macron_french.mp4": "macron",
    "mimictalk_german_anchor.mp4": "german_anchor",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="training wall-clock budget (default 60)")
    p.add_argument("--config", default="default", help="training preset (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="key=value", help="training config override")
    p.add_argument("--real-dir", type=Path, default=DEFAULT_REAL, help=f"real clips (default {DEFAULT_REAL})")
    p.add_argument("--size", type=int, help="prepared crop size (default: the model's image size)")
    p.add_argument("--workers", type=int, default=2, help="prepare: videos in parallel (default 2)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="time split: held-out tail (default 0.2)")
    p.add_argument("--eval-max-frames", type=int, help="evaluate only the first N frames of each test clip")
    p.add_argument("--no-fid", action="store_true", help="skip FID")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--only", nargs="+", metavar="IDENTITY", help="only these people (a smoke run)")
    p.add_argument("--out", type=Path, default=Path("outputs/real_table1"), help="work directory (new or empty)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from fair_baseline import train_for

    from apb2face.cli.main import main as cli
    from apb2face.config import load
    from apb2face.data.format import Dataset
    from apb2face.errors import UserError
    from apb2face.evaluation.evaluate import EvalConfig, evaluate, report_markdown
    from apb2face.io import prepare_output_dir, read_json, write_json
    from apb2face.training.config import RunConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    people = {f: n for f, n in PEOPLE.items() if not args.only or n in args.only}
    try:
        if not people:
            raise UserError(f"--only matches none of {sorted(set(PEOPLE.values()))}")
        missing = [f for f in people if not (args.real_dir / f).is_file()]
        if missing:
            raise UserError(f"real clips missing ({', '.join(missing)}); pass --real-dir", args.real_dir)
        model_size = load(RunConfig, args.config, args.set).model.image_size
        out = prepare_output_dir(args.out)
        data = out / "data"
        identity_map = out / "identity_map.txt"
        identity_map.write_text("".join(f"{f} {name}\n" for f, name in people.items()))

        t = time.perf_counter()
        rc = cli(
            [
                "prepare",
                *[str(args.real_dir / f) for f in people],
                "--out",
                str(data),
                "--identity-map",
                str(identity_map),
                "--split",
                "time",
                "--test-fraction",
                str(args.test_fraction),
                "--size",
                str(args.size or model_size),
                "--workers",
                str(args.workers),
            ]
        )
        prepare_s = time.perf_counter() - t
        if rc == 2 or not (data / "dataset.json").is_file():
            raise UserError("prepare failed", data)
        ds = Dataset(data)
        frames = {
            split: {n: sum(c.num_frames for c in ds.clips(split, identity=n)) for n in ds.identities}
            for split in ("train", "test")
        }
        log.info("prepared %d identities in %.0f s: %s", len(ds.identities), prepare_s, frames)

        train = train_for(args.config, args.set, data, out / "run", args.minutes)
        report = evaluate(
            train["checkpoint"],
            data,
            out / "eval",
            EvalConfig(max_frames_per_clip=args.eval_max_frames, fid_weights="none" if args.no_fid else None),
        ).report
    except UserError as exc:
        print(f"real_table1: error: {exc}", file=sys.stderr)
        return 2

    summary = read_json(data / "reports" / "summary.json")
    device = (
        f"CUDA ({torch.cuda.get_device_name()})"
        if torch.cuda.is_available()
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    budget = (
        f"{args.config} config ({train['image_size']} px, batch {train['batch_size']}, "
        f"{train['params_m']:.2f} M parameters), {train['steps']} steps in {train['loop_seconds'] / 60:.1f} min "
        f"of training loop on {device}"
    )
    data_line = "| frames | " + " | ".join(f"{frames['train'][n]} / {frames['test'][n]}" for n in ds.identities) + " |"
    text = (
        f"# Real people, Table 1 protocol\n\nData: {len(people)} real videos of {len(ds.identities)} people "
        f"(../shared/data/real), `apb2face prepare --split time` (last {args.test_fraction:.0%} of every video "
        f"held out), {prepare_s:.0f} s to prepare.\n\nBudget: {budget}.\n\n"
        "Train / test frames per person:\n\n| | "
        + " | ".join(ds.identities)
        + " |\n|---|"
        + "---:|" * len(ds.identities)
        + "\n"
        + data_line
        + "\n\n"
        + report_markdown(report).split("\n", 1)[1]
    )
    (out / "real_table1.md").write_text(text)
    write_json(
        out / "real_table1.json",
        {
            "train": train,
            "frames": frames,
            "prepare_seconds": round(prepare_s, 1),
            "prepare_summary": summary,
            "metrics": {k: report[k] for k in report if k not in ("details",)},
        },
    )
    print(text)
    print(
        f"\n(written {out / 'real_table1.md'}, {out / 'real_table1.json'}; strips of real people stay in "
        f"{out / 'eval' / 'strips'}: do not commit them)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
