"""The image grid a training run writes every `image_interval` steps (RUN/images and TensorBoard)."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def image_grid(
    reference: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    landmarks: torch.Tensor,
    target_landmarks: torch.Tensor,
    rows: int = 4,
) -> np.ndarray:
    """Rows of [reference | generated | target | target with true (red) and predicted (green) landmarks]."""
    n = min(rows, reference.shape[0])

    def img(t: torch.Tensor) -> np.ndarray:
        return ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

    size = reference.shape[-1]
    out = []
    for i in range(n):
        marked = np.ascontiguousarray(img(target[i]))
        for pts, colour in ((target_landmarks[i], (255, 0, 0)), (landmarks[i], (0, 255, 0))):
            for x, y in pts.detach().float().cpu().numpy() * size:
                cv2.circle(marked, (int(round(x)), int(round(y))), max(1, size // 128), colour, -1)
        out.append(np.concatenate([img(reference[i]), img(fake[i]), img(target[i]), marked], axis=1))
    return np.concatenate(out, axis=0)
