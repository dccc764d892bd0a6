"""Training losses: LSGAN terms for the conditional PatchGAN and the region L1 terms (mouth box, eye boxes).

The generator's objective (the paper's, plus the landmark loss it describes and the official code left out):
    lambda_gan * LSGAN(D(ref, fake) -> 1) + lambda_l1 * L1(fake, target) + lambda_geometry * L1(landmarks, true)
    + lambda_mouth * mouth L1 + lambda_eyes * eyes L1 + lambda_perceptual * feature L1 (training/perceptual.py)
    (the last three 0 in the paper's recipe)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from apb2face.models.config import GEOMETRY_GROUPS


def _geometry_slice(*groups: str) -> slice:
    """Positions of consecutive GEOMETRY_GROUPS inside the fuser's geometry subset (GEOMETRY_POINTS order)."""
    names = list(GEOMETRY_GROUPS)
    first = names.index(groups[0])
    if names[first : first + len(groups)] != list(groups):
        raise ValueError(f"groups {groups} are not consecutive in GEOMETRY_GROUPS")
    start = sum(len(GEOMETRY_GROUPS[n]) for n in names[:first])
    return slice(start, start + sum(len(GEOMETRY_GROUPS[n]) for n in groups))


MOUTH_SLICE = _geometry_slice("lips_outer", "lips_inner")
RIGHT_EYE_SLICE = _geometry_slice("right_eye")
LEFT_EYE_SLICE = _geometry_slice("left_eye")
# the order of the loss values a training step reports (metrics.jsonl keys, TensorBoard scalars)
LOSS_KEYS = (
    "loss_g",
    "loss_d",
    "loss_d_real",
    "loss_d_fake",
    "loss_gan",
    "loss_l1",
    "loss_geometry",
    "loss_mouth",
    "loss_eyes",
    "loss_speech",
    "loss_eye_decouple",
    "loss_fuser_teacher",
    "loss_perceptual",
)


def lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss of patch logits against the label 1 (real) or 0 (fake)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


def box_mask(points: torch.Tensor, size: int, margin: float, min_extent: float = 0.0) -> torch.Tensor:
    """(B, 1, S, S) 0/1 mask of each sample's landmark bounding box, grown by `margin` of its extent on each side.

    points: (B, P, 2) in [0, 1] of the crop. `min_extent` (fraction of the crop) keeps a box from collapsing when
    the points do, as an eye's do when it closes."""
    lo, hi = points.amin(1), points.amax(1)  # (B, 2)
    grow = ((hi - lo).clamp_min(min_extent) - (hi - lo)) / 2 + (hi - lo).clamp_min(min_extent) * margin
    lo, hi = lo - grow, hi + grow
    grid = (torch.arange(size, device=points.device, dtype=points.dtype) + 0.5) / size  # pixel centres in [0, 1]
    in_x = (grid[None] >= lo[:, :1]) & (grid[None] <= hi[:, :1])  # (B, S)
    in_y = (grid[None] >= lo[:, 1:]) & (grid[None] <= hi[:, 1:])  # (B, S)
    return (in_y[:, :, None] & in_x[:, None, :])[:, None].to(points.dtype)


def masked_l1(fake: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 averaged over the pixels where `mask` (B, 1, S, S) is set."""
    mask = mask.to(fake.dtype)
    return ((fake - target).abs() * mask).sum() / (mask.sum() * fake.shape[1]).clamp_min(1.0)


def mouth_l1(fake: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor, margin: float = 0.35) -> torch.Tensor:
    """L1 inside each sample's mouth box (lips bounding box grown by `margin`), averaged over the box pixels.

    The mouth is ~3% of a face crop, so the full-image L1 learns it last; this term is what lets a short CPU run
    learn audio-driven lip motion. landmarks: (B, K, 2) geometry points in [0, 1]; images (B, 3, S, S).
    """
    return masked_l1(fake, target, box_mask(landmarks[:, MOUTH_SLICE], fake.shape[-1], margin))


def eyes_l1(fake: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """L1 inside the two eye boxes of the target's landmarks, averaged over their pixels.

    At 128 px an eye is ~12 x 5 px, well under 1% of the crop: the image L1 barely notices a blink, so the renderer
    learns to ignore eye openness. The boxes keep a minimum height (a closed eye's points are nearly collinear) so
    the lids above and below the lash line are in them."""
    size = fake.shape[-1]
    mask = torch.maximum(
        box_mask(landmarks[:, RIGHT_EYE_SLICE], size, margin, min_extent=0.05),
        box_mask(landmarks[:, LEFT_EYE_SLICE], size, margin, min_extent=0.05),
    )
    return masked_l1(fake, target, mask)


def eye_points_l1(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Landmark L1 over the two eye contours only (B, K, 2 geometry points)."""
    eyes = torch.cat([pred[:, RIGHT_EYE_SLICE], pred[:, LEFT_EYE_SLICE]], 1)
    return F.l1_loss(eyes, torch.cat([true[:, RIGHT_EYE_SLICE], true[:, LEFT_EYE_SLICE]], 1))


def non_eye_points(points: torch.Tensor) -> torch.Tensor:
    """(B, K - eye points, 2): every geometry point except the two eye contours."""
    keep = torch.ones(points.shape[1], dtype=torch.bool, device=points.device)
    keep[RIGHT_EYE_SLICE] = False
    keep[LEFT_EYE_SLICE] = False
    return points[:, keep]


def non_eye_l1(moved: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """L1 between the non-eye points of `moved` and of `anchor` (detached: the anchor only says where those points
    stay). Eye decoupling: a prediction with another eye input vs the one with the true eyes; fuser teacher: the
    student's prediction vs the teacher's with open eyes."""
    return F.l1_loss(non_eye_points(moved), non_eye_points(anchor).detach())


def lip_shape(points: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 40, 2) lip shape: the lip points relative to their centre, in units of the eye distance of `reference`
    (default: the points' own)."""
    ref = points if reference is None else reference
    eyes = torch.stack([ref[:, RIGHT_EYE_SLICE].mean(1), ref[:, LEFT_EYE_SLICE].mean(1)], 1)
    scale = (eyes[:, 0] - eyes[:, 1]).norm(dim=-1).clamp_min(1e-3)[:, None, None]
    lips = points[:, MOUTH_SLICE]
    return (lips - lips.mean(1, keepdim=True)) / scale


def lip_shape_l1(pred: torch.Tensor, true: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between lip shapes (`lip_shape`, both in the true landmarks' eye distances). Where the mouth sits in the
    crop and how big the face is differ from person to person; the shape the mouth makes for a sound is what real
    speakers can teach a fuser that renders other faces. `offset` (B, 40, 2) is subtracted from the true shape: the
    speaker's mean shape minus the rendered people's, so a real speaker teaches how their mouth *moves*, not the
    shape of their mouth at rest."""
    target = lip_shape(true)
    if offset is not None:
        target = target - offset
    return F.l1_loss(lip_shape(pred, true), target)
