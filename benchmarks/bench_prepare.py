"""Benchmarks of `apb2face prepare`: speed on 720p, accuracy against `apb2face synth` truth, the real clips.

    .venv/bin/python benchmarks/bench_prepare.py speed [--videos 2 --seconds 20 --workers 2 --keep DIR]
    .venv/bin/python benchmarks/bench_prepare.py accuracy [--identities 6 --clips 4 --seed 0]
    .venv/bin/python benchmarks/bench_prepare.py real OUT [--workers 2]     (needs ../shared/data/real)

speed: 25 fps 1280x720 H.264 + AAC videos are made from the real clips (upscaled to 720 px high, padded to 1280 wide;
  without ../shared, from synth frames), then `apb2face prepare --workers K` runs end to end (process start, decode,
  detect, crop, write, reports). Printed: frames/s by wall clock, and CPU seconds, so that a run on a shared machine
  can be judged (frames per CPU-second x cores is what K dedicated cores give when the work spreads over them).
accuracy: renders a synth dataset with MP4s, prepares the MP4s, compares with the renderer's truth
  (apb2face.evaluation.prepare_truth) and prints landmark/pose/blink errors plus the calibration numbers behind
  face.PITCH_BIAS and face.EYE_CLOSED_FRACTION.
real: prepares every talking-head clip of ../shared/data/real into one dataset (obama x2 and GRID speaker 2 x2 mapped
  to one identity each) and prints the per-clip table: frames kept, offset, face-size range.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
APB = [sys.executable, "-m", "apb2face"]
REAL_IDENTITY_MAP = """\
# the same person in two clips
edtalk_obama.mp4 obama
styletalk_obama_clip1.mp4 obama
grid_pwij3p.mpg grid_speaker2
grid_id2_swwp2s.mpg grid_speaker2
"""


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the command and its children, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def make_720p(path: Path, source: Path | None, seconds: float, seed: int) -> int:
    """A 25 fps 1280x720 clip: a real clip upscaled to 720 px high and padded, or synth frames (no ../shared)."""
    import cv2

    from apb2face.data.audio import load_audio
    from apb2face.data.video import ConstantRateFrames, write_video

    n = int(seconds * 25)
    if source is not None:
        audio = load_audio(source)[: n * 640]
        frames = ConstantRateFrames(source, 25.0)
    else:
        from apb2face.data.format import Dataset

        tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
        subprocess.run(
            APB
            + [
                "synth",
                str(tmp / "s"),
                "--identities",
                "1",
                "--clips-per-identity",
                str(max(1, int(seconds // 3))),
                "--seed",
                str(seed),
                "--no-videos",
            ],
            check=True,
            capture_output=True,
        )
        ds = Dataset(tmp / "s")
        clips = [ds.load_clip(c) for c in ds.clips()]
        frames = (np.asarray(f) for c in clips for f in c.frames)
        audio = np.concatenate([c.audio for c in clips])[: n * 640]

    def gen():
        for i, f in enumerate(frames):
            if i >= n:
                break
            h, w = f.shape[:2]
            s = 720 / h
            f = cv2.resize(f, (round(w * s), 720), interpolation=cv2.INTER_CUBIC)[:, :1280]
            out = np.empty((720, 1280, 3), np.uint8)
            out[:] = (40, 60, 90)
            x = (1280 - f.shape[1]) // 2
            out[:, x : x + f.shape[1]] = f
            yield out

    return write_video(path, gen(), fps=25, audio=audio, sample_rate=16000, crf=20)


def bench_speed(args: argparse.Namespace) -> None:
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    vids = work / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    sources = (
        [
            REAL / "dfrf_cnn_anchor.mp4",
            REAL / "mimictalk_german_anchor.mp4",
            REAL / "dfrf_macron_french.mp4",
            REAL / "sadtalker_hdtf_katiehill.mp4",
        ]
        if REAL.is_dir()
        else [None] * 4
    )
    total = 0
    for i in range(args.videos):
        path = vids / f"v720_{i}.mp4"
        if not path.exists():
            print(f"making {path} ...", flush=True)
            make_720p(path, sources[i % len(sources)], args.seconds, i)
        from apb2face.data.video import probe

        info = probe(path)
        total += int(round(info.duration * 25))
        print(f"  {path.name}: {info.width}x{info.height} {info.fps:g} fps {info.duration:.1f} s")
    load = os.getloadavg()
    for workers in sorted({1, args.workers}):
        out = work / f"ds_w{workers}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        inputs = (
            [str(vids / f"v720_{i}.mp4") for i in range(args.videos)] if workers > 1 else [str(vids / "v720_0.mp4")]
        )
        frames = total if workers > 1 else int(round(_probe_frames(vids / "v720_0.mp4")))
        wall, cpu, _ = _run(APB + ["prepare", *inputs, "--out", str(out), "--workers", str(workers)])
        summary = json.loads((out / "reports" / "summary.json").read_text())
        kept = sum(v["frames_kept"] for v in summary["videos"])
        print(
            f"workers={workers}: {len(inputs)} video(s), {frames} frames (kept {kept}) in {wall:.1f} s wall "
            f"= {frames / wall:.0f} frames/s; CPU {cpu:.1f} s = {frames / cpu:.0f} frames per CPU-second "
            f"(x{min(workers, os.cpu_count() or 1)} cores: {frames / cpu * min(workers, os.cpu_count() or 1):.0f}"
            f" frames/s); load average before: {load[0]:.1f}"
        )
    print(f"(machine: {os.cpu_count()} cores; work dir {work})")


def _probe_frames(path: Path) -> float:
    from apb2face.data.video import probe

    return probe(path).duration * 25


def bench_accuracy(args: argparse.Namespace) -> None:
    from apb2face.data import face
    from apb2face.data.format import Dataset
    from apb2face.evaluation.prepare_truth import compare_with_truth

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_truth_"))
    truth, out = work / "synth", work / "prepared"
    subprocess.run(["rm", "-rf", str(truth), str(out)], check=True)
    t = time.perf_counter()
    _run(
        APB
        + [
            "synth",
            str(truth),
            "--identities",
            str(args.identities),
            "--clips-per-identity",
            str(args.clips),
            "--seed",
            str(args.seed),
        ]
    )
    print(f"synth: {args.identities} identities x {args.clips} clips in {time.perf_counter() - t:.0f} s")
    ids = Dataset(truth).identities
    (work / "map.txt").write_text("".join(f"*/{i}/* {i}\n" for i in ids))
    wall, cpu, _ = _run(
        APB
        + [
            "prepare",
            str(truth / "videos"),
            "--out",
            str(out),
            "--identity-map",
            str(work / "map.txt"),
            "--workers",
            str(args.workers),
        ]
    )
    r = compare_with_truth(out, truth)
    n_truth = sum(c.num_frames for c in Dataset(truth).clips())
    lm, pe, bl = r["landmark_error_iod_percent"], r["pose_error_degrees"], r["blink"]
    print(f"prepared {r['frames']} of {n_truth} rendered frames ({r['clips']} clips) in {wall:.0f} s")
    print(f"landmarks: mean {lm['mean']:.2f} % IOD (p95 {lm['p95']:.2f}, max {lm['max']:.2f})   target <= 5")
    for k, lim in (("yaw", 3), ("pitch", 5), ("roll", 3)):
        print(
            f"{k:5s}: mean |error| {pe[k]['mean_abs']:.2f} deg (bias {pe[k]['bias']:+.2f}, rms {pe[k]['rms']:.2f})"
            f"   target <= {lim}"
        )
    print(f"blinks: F1 {bl['f1']:.3f} (tp {bl['tp']}, fp {bl['fp']}, fn {bl['fn']})   target >= 0.9")
    # calibration: what PITCH_BIAS and EYE_CLOSED_FRACTION measure on this data
    p, t_ = Dataset(out), Dataset(truth)
    ratios, open_ratio = [], []
    for ident in p.identities:
        ears, truth_eyes = [], []
        for rec in p.clips(identity=ident):
            info = json.loads((p.clip_dir(rec) / "clip.json").read_text())
            tc = t_.load_clip(f"{ident}/{Path(info['source']).stem}")
            s = info["source_start_frame"]
            lmk = p.load_clip(rec).landmarks
            ears.append(np.array([face.eye_aspect_ratios(x) for x in lmk]))
            truth_eyes.append(tc.eyes[s : s + rec.num_frames])
        e, te = np.concatenate(ears), np.concatenate(truth_eyes)
        ref = np.percentile(e, 90, axis=0)
        closed = te < 0.1
        if closed.any():
            ratios.append(np.median((e / ref)[closed]))
        open_ratio.append(np.median((e / ref)[te > 0.95]))
    print(
        f"calibration: pitch bias left after face.PITCH_BIAS={face.PITCH_BIAS:+.2f}: {pe['pitch']['bias']:+.2f} "
        f"(-> PITCH_BIAS {face.PITCH_BIAS + pe['pitch']['bias']:+.2f}); closed-eye EAR / open EAR median "
        f"{np.median(ratios) if ratios else float('nan'):.2f} (face.EYE_CLOSED_FRACTION={face.EYE_CLOSED_FRACTION})"
        f", open frames {np.median(open_ratio):.2f}"
    )


def bench_real(args: argparse.Namespace) -> None:
    if not REAL.is_dir():
        sys.exit(f"real clips not found at {REAL}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} exists and is not empty")
    videos = sorted(p for p in REAL.iterdir() if p.suffix in (".mp4", ".mpg"))
    map_file = Path(tempfile.mkdtemp(prefix="bench_real_")) / "identities.txt"
    map_file.write_text(REAL_IDENTITY_MAP)
    wall, cpu, stdout = _run(
        APB
        + [
            "prepare",
            *map(str, videos),
            "--out",
            str(out),
            "--identity-map",
            str(map_file),
            "--workers",
            str(args.workers),
            "--split",
            args.split,
        ]
    )
    print(stdout)
    print(f"{len(videos)} videos in {wall:.0f} s wall, {cpu:.0f} CPU-s")
    print(
        f"{'video':40s} {'identity':28s} {'frames':>6s} {'kept':>5s} {'clips':>5s} {'offset':>14s} "
        f"{'crop side px':>13s} {'IOD px':>9s}"
    )
    for path in videos:
        rep = next((out / "reports").glob(f"*__{path.stem}.json"), None)
        if rep is None:
            print(f"{path.name:40s} FAILED")
            continue
        r = json.loads(rep.read_text())
        o = r["offset"]
        off = f"{o['frames']:+d} r{o['r']:.2f}" + (" fixed" if o["applied"] else " ok" if o["clear"] else " ?")
        side, iod = r["face_size_px"]["crop_side"], r["face_size_px"]["inter_ocular"]
        print(
            f"{path.name:40s} {r['identity']:28s} {r['frames']:6d} {r['frames_kept']:5d} {len(r['clips']):5d} "
            f"{off:>14s} {side['min']:6.0f}-{side['max']:<6.0f} {iod['min']:4.0f}-{iod['max']:<4.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--videos", type=int, default=2)
    s.add_argument("--seconds", type=float, default=20.0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--keep", help="work directory to keep (and reuse the 720p videos from)")
    a = sub.add_parser("accuracy")
    a.add_argument("--identities", type=int, default=6)
    a.add_argument("--clips", type=int, default=4)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--keep", help="work directory to keep")
    r = sub.add_parser("real")
    r.add_argument("out", help="output dataset directory (outside the repository)")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--split", choices=("clip", "time"), default="clip")
    args = parser.parse_args()
    {"speed": bench_speed, "accuracy": bench_accuracy, "real": bench_real}[args.what](args)


if __name__ == "__main__":
    main()
