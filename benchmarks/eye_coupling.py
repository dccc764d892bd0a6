"""How much a checkpoint's eye input moves everything but the eyes: the fuser's side of "blinks open the mouth".

The fuser turns audio + pose + eye openness into a latent and landmarks; the renderer draws the landmarks (the
geometry sketch) and reads the latent. A fuser taught to close the eyes can also move the lips with the eye input,
and the renderer then opens the mouth in a silent blink. Per checkpoint, on held-out samples of a dataset (their audio
and pose, eyes set fully open and then fully closed):
- eye contour height open -> closed (both eyes' landmark extent in y, fraction of the crop): do the eyes close;
- mouth and all non-eye landmark shift (mean |difference|, fraction of the crop): do the lips move with them;
- relative latent change |z_open - z_closed| / |z_open|.

    .venv/bin/python benchmarks/eye_coupling.py --data data/builtin128 --checkpoint src/apb2face/checkpoints/demo \\
        --checkpoint runs/mine/final
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from apb2face.models.modeling import load_pretrained
from apb2face.training.data import FrameDataset
from apb2face.training.losses import LEFT_EYE_SLICE, MOUTH_SLICE, RIGHT_EYE_SLICE, non_eye_points


def eye_height(landmarks: torch.Tensor) -> torch.Tensor:
    """(B,) mean over the two eyes of the eye contour's vertical extent."""
    spans = [landmarks[:, s, 1].amax(1) - landmarks[:, s, 1].amin(1) for s in (LEFT_EYE_SLICE, RIGHT_EYE_SLICE)]
    return (spans[0] + spans[1]) / 2


def coupling(checkpoint: str, data: str, samples: int, seed: int) -> dict[str, float]:
    pretrained = load_pretrained(checkpoint)
    model = pretrained.model.eval()
    dataset = FrameDataset(data, pretrained.config, seed=seed, split="test")
    picked = np.random.default_rng(seed).choice(len(dataset), min(samples, len(dataset)), replace=False)
    items = [dataset[int(k)] for k in picked]
    audio = torch.stack([item["audio"] for item in items])
    pose = torch.stack([item["pose"] for item in items])
    with torch.no_grad():
        latent_open, open_ = model.fuse(audio, pose, torch.ones(len(items), 2))
        latent_closed, closed = model.fuse(audio, pose, torch.zeros(len(items), 2))
    return {
        "eye_height_open": eye_height(open_).mean().item(),
        "eye_height_closed": eye_height(closed).mean().item(),
        "mouth_shift": (open_[:, MOUTH_SLICE] - closed[:, MOUTH_SLICE]).abs().mean().item(),
        "non_eye_shift": (non_eye_points(open_) - non_eye_points(closed)).abs().mean().item(),
        "latent_change": ((latent_open - latent_closed).norm(dim=1) / latent_open.norm(dim=1)).mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="release checkpoint (repeatable)")
    parser.add_argument("--data", default="data/builtin128", help="dataset whose test split gives audio and pose")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| checkpoint | eye height open → closed | mouth shift | non-eye shift | latent change |")
    print("|---|---:|---:|---:|---:|")
    for checkpoint in args.checkpoint:
        c = coupling(checkpoint, args.data, args.samples, args.seed)
        print(
            f"| {checkpoint} | {c['eye_height_open']:.4f} → {c['eye_height_closed']:.4f} | {c['mouth_shift']:.4f} "
            f"| {c['non_eye_shift']:.4f} | {c['latent_change']:.1%} |"
        )


if __name__ == "__main__":
    main()
