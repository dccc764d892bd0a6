"""Geometry sketch: the fuser's landmarks drawn as soft contour images, a spatial view of the geometry vector.

AdaConv (per-channel scale and shift) tells the renderer *what* the geometry is but not *where* it is: to open the
mouth it has to learn a global-to-spatial mapping, which takes the paper's ~100k GPU steps. Drawing the predicted
landmarks as contours (APB2Face v1's landmark image, here soft and computed on the fly) gives the decoder the mouth's
outline at the right pixels, so a short CPU run learns lip motion. The sketch is a pure function of the geometry the
fuser predicts from audio + pose + blink; no extra input is needed at inference.

Channels: 0 face oval + brows + nose (pose), 1 eyes (blink), 2 outer lips, 3 inner lips (mouth opening).
Each channel is max over its segments of exp(-d^2 / 2 sigma^2), d = pixel distance to the segment.
"""

from __future__ import annotations

import torch

from apb2face.models.config import GEOMETRY_GROUPS

SKETCH_CHANNELS = 4
# (group, closed contour?) per sketch channel
_CHANNEL_GROUPS: tuple[tuple[tuple[str, bool], ...], ...] = (
    (("face_oval", True), ("right_brow", False), ("left_brow", False), ("nose", False)),
    (("right_eye", True), ("left_eye", True)),
    (("lips_outer", True),),
    (("lips_inner", True),),
)


def _segments() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start index, end index (into the geometry points) and channel of every contour segment."""
    offsets, start = {}, 0
    for name, group in GEOMETRY_GROUPS.items():
        offsets[name] = start
        start += len(group)
    a, b, channel = [], [], []
    for c, groups in enumerate(_CHANNEL_GROUPS):
        for name, closed in groups:
            n, base = len(GEOMETRY_GROUPS[name]), offsets[name]
            if name == "nose":  # four separate points, not a contour: zero-length segments draw dots
                pairs = [(i, i) for i in range(n)]
            else:
                pairs = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if closed else [])
            a += [base + i for i, _ in pairs]
            b += [base + j for _, j in pairs]
            channel += [c] * len(pairs)
    return torch.tensor(a), torch.tensor(b), torch.tensor(channel)


_SEG_A, _SEG_B, _SEG_CHANNEL = _segments()
# segment indices per channel as integer lists (exporters keep these as constants; a boolean mask would not be)
_CHANNEL_SEGMENTS = [torch.nonzero(_SEG_CHANNEL == c).flatten() for c in range(SKETCH_CHANNELS)]


def geometry_sketch(landmarks: torch.Tensor, size: int, sigma: float = 0.75) -> torch.Tensor:
    """landmarks (B, K, 2) in [0, 1] of the crop (GEOMETRY_POINTS order) -> sketch (B, 4, size, size) in [0, 1].

    sigma is in pixels of the sketch. Differentiable in the landmarks (exporters trace it as plain tensor ops).
    """
    seg_a, seg_b = _SEG_A.to(landmarks.device), _SEG_B.to(landmarks.device)
    p = landmarks[:, seg_a] * size - 0.5  # (B, N, 2) pixel coordinates, pixel centres at integers
    q = landmarks[:, seg_b] * size - 0.5
    coords = torch.arange(size, device=landmarks.device, dtype=landmarks.dtype)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)  # (P, 2) as (x, y)
    d = (q - p)[:, :, None]  # (B, N, 1, 2)
    rel = grid[None, None] - p[:, :, None]  # (B, N, P, 2)
    t = ((rel * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-6)).clamp(0.0, 1.0)  # (B, N, P)
    dist2 = ((rel - t[..., None] * d) ** 2).sum(-1)
    ink = torch.exp(-dist2 / (2.0 * sigma * sigma))  # (B, N, P)
    channels = [ink.index_select(1, idx.to(ink.device)).amax(dim=1) for idx in _CHANNEL_SEGMENTS]
    return torch.stack(channels, dim=1).view(landmarks.shape[0], SKETCH_CHANNELS, size, size)
