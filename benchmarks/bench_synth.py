"""Benchmark `apb2face synth`: wall time for N identities x M sentences at a frame size (issue target: 6 x 10 at
256x256 in <= 3 minutes on 2 cores), plus the dataset size and a detector check on a sample of frames.

Run: .venv/bin/python benchmarks/bench_synth.py [--identities 6] [--clips 10] [--size 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def dir_size(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def detector_check(root: Path, step: int) -> tuple[int, int, float]:
    from apb2face.data import face
    from apb2face.data.format import Dataset

    ds = Dataset(root)
    found = total = 0
    errors = []
    with face.FaceMesh(video=False) as mesh:
        for rec in ds.clips():
            clip = ds.load_clip(rec)
            size = clip.frames.shape[1]
            for i in range(0, len(clip.frames), step):
                points = mesh.detect(np.asarray(clip.frames[i]))
                total += 1
                if points is None:
                    continue
                found += 1
                truth = clip.landmarks[i] * size
                errors.append(np.linalg.norm(points[:, :2] - truth, axis=1).mean() / face.inter_ocular(truth) * 100)
    return found, total, float(np.mean(errors)) if errors else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=6)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detect-step", type=int, default=10, help="check every n-th frame with mediapipe")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        cmd = [
            sys.executable,
            "-m",
            "apb2face",
            "synth",
            "--out",
            str(out),
            "--identities",
            str(args.identities),
            "--clips-per-identity",
            str(args.clips),
            "--size",
            str(args.size),
            "--workers",
            str(args.workers),
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        from apb2face.data.format import Dataset

        meta = Dataset(out).meta
        frames = sum(c.num_frames for c in meta.clips)
        print(
            f"synth {args.identities} identities x {args.clips} clips at {args.size}x{args.size}, "
            f"{args.workers} workers: {elapsed:.1f} s wall ({frames} frames, {frames / elapsed:.0f} frames/s, "
            f"{frames / 25:.0f} s of video)"
        )
        mib = 2**20
        print(
            f"dataset files {dir_size(out / 'clips') / mib:.0f} MiB (frames.npy "
            f"{dir_size(out / 'clips', 'frames.npy') / mib:.0f} MiB), MP4s {dir_size(out / 'videos') / mib:.1f} MiB"
        )
        found, total, err = detector_check(out, args.detect_step)
        print(
            f"mediapipe face mesh: face found in {found}/{total} sampled frames ({100 * found / total:.1f} %), "
            f"mean landmark error {err:.2f} % of inter-ocular distance"
        )


if __name__ == "__main__":
    main()
