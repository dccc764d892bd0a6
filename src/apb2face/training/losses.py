"""Training losses: LSGAN terms for the conditional PatchGAN and the mouth-box L1.

The generator's objective (the paper's, plus the landmark loss it describes and the official code left out):
    lambda_gan * LSGAN(D(ref, fake) -> 1) + lambda_l1 * L1(fake, target) + lambda_geometry * L1(landmarks, true)
    + lambda_mouth * mouth L1 (0 in the paper's recipe)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from apb2face.models.config import GEOMETRY_GROUPS

# positions of the inner + outer lip points inside the fuser's geometry subset (GEOMETRY_POINTS order)
_MOUTH_START = len(GEOMETRY_GROUPS["face_oval"])
MOUTH_SLICE = slice(
    _MOUTH_START, _MOUTH_START + len(GEOMETRY_GROUPS["lips_outer"]) + len(GEOMETRY_GROUPS["lips_inner"])
)
# the order of the loss values a training step reports (metrics.jsonl keys, TensorBoard scalars)
LOSS_KEYS = ("loss_g", "loss_d", "loss_d_real", "loss_d_fake", "loss_gan", "loss_l1", "loss_geometry", "loss_mouth")


def lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss of patch logits against the label 1 (real) or 0 (fake)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


def mouth_l1(fake: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor, margin: float = 0.35) -> torch.Tensor:
    """L1 inside each sample's mouth box (lips bounding box grown by `margin`), averaged over the box pixels.

    The mouth is ~3% of a face crop, so the full-image L1 learns it last; this term is what lets a short CPU run
    learn audio-driven lip motion. landmarks: (B, K, 2) geometry points in [0, 1]; images (B, 3, S, S).
    """
    lips = landmarks[:, MOUTH_SLICE]  # (B, 40, 2)
    lo, hi = lips.amin(1), lips.amax(1)  # (B, 2)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    size = fake.shape[-1]
    grid = (torch.arange(size, device=fake.device, dtype=fake.dtype) + 0.5) / size  # pixel centres in [0, 1]
    in_x = (grid[None] >= lo[:, :1]) & (grid[None] <= hi[:, :1])  # (B, S)
    in_y = (grid[None] >= lo[:, 1:]) & (grid[None] <= hi[:, 1:])  # (B, S)
    mask = (in_y[:, :, None] & in_x[:, None, :]).to(fake.dtype)[:, None]  # (B, 1, S, S)
    return ((fake - target).abs() * mask).sum() / (mask.sum() * fake.shape[1]).clamp_min(1.0)
