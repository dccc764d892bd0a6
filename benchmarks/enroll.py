"""Enrol real people the model never saw and print the held-out result per person, next to the real footage's own
reading of the same measures (and, with --scratch, next to training from scratch on the same footage and budget).

For each person, `apb2face enroll CLIP --name P --minutes M` (the CLI, as a user runs it; the last 20 % of the clip
is held out), then the numbers of its enrollment.json. With --scratch, `apb2face train --config demo --max-minutes M
--fit-schedule` on the same prepared footage (the enrolled checkpoint ships it) and `apb2face evaluate` on the same
held-out frames.

Targets (the enrolment issue): SSIM >= 0.80, M-LMD <= 3 %, detection rate 100 %, lip-sync r >= 0.9 x real,
blink F1 >= 0.5, CPBD >= 0.8 x real, CSIM >= 0.9 x real-vs-real, and the base's people lose <= 0.01 SSIM.

    taskset -c 1 .venv/bin/python benchmarks/enroll.py --minutes 20 --out runs/enroll-bench \\
        [--people dfrf_cnn_anchor,edtalk_hdtf_tedlieu] [--base-data DIR] [--scratch] [--set train.lr=5e-5]

Needs ../shared/data/real (the clips are read, never copied into the repository). Pin it to a core: the budget is
wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
# five people with at least 20 s of footage (styletalk_kristinoem has 18 s of usable face, under enroll's minimum)
PEOPLE = (
    "dfrf_cnn_anchor",
    "dfrf_macron_french",
    "edtalk_hdtf_tedlieu",
    "liveportrait_d9_man_glasses",
    "mimictalk_german_anchor",
)
APB2FACE = [sys.executable, "-m", "apb2face"]
# (key, label, format, target check on (generated, real) -> bool or None when there is no target)
ROWS = (
    ("ssim", "SSIM", ".3f", lambda g, r: g >= 0.80),
    ("psnr", "PSNR dB", ".2f", None),
    ("lmd_mouth", "M-LMD %", ".2f", lambda g, r: g <= 3.0),
    ("detection_rate", "DR", ".0%", lambda g, r: g >= 1.0),
    ("pose_error_deg", "pose err deg", ".2f", None),
    ("blink_f1", "blink F1", ".2f", lambda g, r: g >= 0.5),
    ("lipsync_corr", "lip-sync r", ".2f", lambda g, r: r is not None and g >= 0.9 * r),
    ("cpbd", "CPBD", ".3f", lambda g, r: r is not None and g >= 0.8 * r),
    ("csim", "CSIM", ".3f", lambda g, r: r is not None and g >= 0.9 * r),
)


def clip_of(person: str) -> Path:
    for suffix in (".mp4", ".mpg"):
        path = REAL / f"{person}{suffix}"
        if path.is_file():
            return path
    raise SystemExit(f"no clip named {person} in {REAL}")


def enroll(person: str, out: Path, minutes: float, base_data: list[Path], settings: list[str]) -> dict:
    ckpt = out / person
    if not (ckpt / "enrollment.json").is_file():
        extra = [a for d in base_data for a in ("--base-data", str(d))]
        resume = ["--resume"] if (out / f"{person}.enroll-work").is_dir() else []
        cmd = [*APB2FACE, "enroll", str(clip_of(person)), "--name", person, "--out", str(ckpt), "--minutes"]
        subprocess.run([*cmd, str(minutes), *extra, *resume, *settings], check=True)
    return json.loads((ckpt / "enrollment.json").read_text())


def scratch(person: str, out: Path, minutes: float) -> dict:
    """The same footage and budget, trained from scratch (the demo recipe's model), evaluated on the same frames."""
    data = out / person / "data" / person
    run, report = out / f"{person}-scratch", out / f"{person}-scratch-eval"
    if not (run / "final").is_dir():
        cmd = ["train", "--data", str(data), "--config", "demo", "--out", str(run), "--max-minutes", str(minutes)]
        subprocess.run([*APB2FACE, *cmd, "--fit-schedule"], check=True)
    if not (report / "report.json").is_file():
        cmd = ["evaluate", "--checkpoint", str(run / "final"), "--data", str(data), "--out", str(report)]
        subprocess.run([*APB2FACE, *cmd, "--fid-weights", "none"], check=True)
    return json.loads((report / "report.json").read_text())


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table(results: dict[str, dict], scratch_reports: dict[str, dict]) -> str:
    people = list(results)
    lines = [
        "| metric | " + " | ".join(people) + " | mean | target met |",
        "|---|" + "---:|" * (len(people) + 2),
    ]
    for key, label, spec, check in ROWS:
        cells, met = [], []
        gen_values = []
        for p in people:
            measured = results[p]["measured"]
            g = measured["new"][key]["mean"]
            r = (measured["real"].get(key) or {}).get("mean") if isinstance(measured["real"].get(key), dict) else None
            cell = fmt(g, spec) + (f" ({fmt(r, spec)})" if r is not None else "")
            if p in scratch_reports:
                cell += f" / scratch {fmt(scratch_reports[p][key]['mean'], spec)}"
            cells.append(cell)
            if g is not None:
                gen_values.append(g)
            if check is not None and g is not None:
                met.append(bool(check(g, r)))
        mean = sum(gen_values) / len(gen_values) if gen_values else None
        verdict = "" if check is None else f"{sum(met)}/{len(people)}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {fmt(mean, spec)} | {verdict} |")
    drift = []
    for p in people:
        d = results[p]["measured"]["drift"]
        drift.append(max(v["before"] - v["after"] for v in d.values()) if d else None)
    ok = sum(x is not None and x <= 0.01 for x in drift)
    lines.append(
        "| base people's largest SSIM drop | "
        + " | ".join(fmt(x, "+.3f") for x in drift)
        + f" | | {ok}/{len(people)} |"
    )
    steps = [f"{results[p]['training']['steps']}" for p in people]
    lines.append("| training steps | " + " | ".join(steps) + " | | |")
    seconds = [f"{results[p]['seconds'][p]['train']:.0f} s" for p in people]
    lines.append("| footage trained on | " + " | ".join(seconds) + " | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", default=",".join(PEOPLE), help="clip names in ../shared/data/real")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("runs/enroll-bench"))
    parser.add_argument("--base-data", type=Path, action="append", default=[])
    parser.add_argument("--scratch", action="store_true", help="also train from scratch with the same budget")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an enrolment or training setting passed to every `apb2face enroll` (e.g. train.d_warmup_steps=40)",
    )
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"skipped: the real clips are not at {REAL}")
        return 0
    results, scratch_reports = {}, {}
    for person in args.people.split(","):
        results[person] = enroll(person, args.out, args.minutes, args.base_data, args.set)
        if args.scratch:
            scratch_reports[person] = scratch(person, args.out, args.minutes)
        print(table(results, scratch_reports), flush=True)
    print(f"\n{args.minutes:g} min per person; cells: enrolled (real footage's own reading) [/ scratch]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
