"""Plot a training run's losses from RUN/metrics.jsonl into a PNG (the loss curve of a model card).

.venv/bin/python scripts/plot_losses.py runs/demo2 --out src/apb2face/checkpoints/demo/loss_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CURVES = (
    ("loss_l1", "L1 (image)"),
    ("loss_mouth", "L1 (mouth box)"),
    ("loss_geometry", "landmark L1"),
    ("loss_gan", "LSGAN (G)"),
    ("loss_d", "D"),
)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over the finite values in each window (NaN where a window holds none)."""
    if len(values) < window:
        return values
    finite = np.isfinite(values)
    kernel = np.ones(window)
    total = np.convolve(np.where(finite, values, 0.0), kernel, mode="valid")
    count = np.convolve(finite.astype(float), kernel, mode="valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def measured(rows: list[dict], key: str) -> np.ndarray:
    """The key's value per step; NaN where the step did not compute it: the generator terms are logged as exact
    zeros while a warm start's discriminator trains alone (train.d_warmup_steps), which is no measurement."""
    values = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    if not key.startswith("loss_d"):
        values[values == 0.0] = np.nan
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="training run directory (holds metrics.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--smooth", type=int, default=25, help="moving-average window in steps (default 25)")
    p.add_argument("--title", default=None)
    p.add_argument("--keys", default=None, help="metrics.jsonl keys to plot (comma-separated)")
    args = p.parse_args()
    curves = tuple((key, key) for key in args.keys.split(",")) if args.keys else CURVES
    rows = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = np.array([r["step"] for r in rows])
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], curves):
        values = measured(rows, key)
        ax.plot(steps, values, color="0.8", linewidth=0.5)
        s = smooth(values, args.smooth)
        ax.plot(steps[len(steps) - len(s) :], s, color="C0")
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.suptitle(args.title or f"{args.run} ({len(rows)} steps, moving average of {args.smooth})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
