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
import torch.nn.functional as F

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
SKETCH_REACH = 4  # px around a segment that get ink (sigma 0.75: exp(-16 / 1.125) < 1e-6 beyond)
SKETCH_MAX_SEGMENT = 1 / 6  # longest segment drawn in full, in fractions of the crop


def geometry_sketch(landmarks: torch.Tensor, size: int, sigma: float = 0.75) -> torch.Tensor:
    """landmarks (B, K, 2) in [0, 1] of the crop (GEOMETRY_POINTS order) -> sketch (B, 4, size, size) in [0, 1].

    sigma is in pixels of the sketch. Each segment is inked only inside a fixed window around it (its bounding box
    plus `SKETCH_REACH` px: beyond that the ink is below 1e-6) and the windows are max-scattered into the channels:
    the same image as evaluating every segment at every pixel, 20x faster at 128 px. Segments longer than
    `SKETCH_MAX_SEGMENT` of the crop (real faces: at most 0.11) are drawn only up to that length. Traced by the
    exporters as plain tensor ops (ScatterElements with max: ONNX opset 18).
    """
    # float32 whatever the caller's precision: bf16 cannot hold pixel coordinates (8-bit mantissa) or indices > 256
    landmarks = landmarks.float()
    batch, dtype, device = landmarks.shape[0], landmarks.dtype, landmarks.device
    window = int(SKETCH_MAX_SEGMENT * size) + 2 * SKETCH_REACH + 1
    p = landmarks[:, _SEG_A.to(device)] * size - 0.5  # (B, N, 2) pixel coordinates, pixel centres at integers
    q = landmarks[:, _SEG_B.to(device)] * size - 0.5
    corner = torch.floor(torch.minimum(p, q)) - SKETCH_REACH  # (B, N, 2): the window's top-left pixel
    # x and y stay separate, each over one side of the window (W,): the window's (W, W) grid only appears in the
    # broadcasts below, and no reduction runs over a trailing axis of two (slow in ONNX Runtime)
    offsets = torch.arange(window, device=device, dtype=dtype)
    dx, dy = (q - p)[..., 0, None, None], (q - p)[..., 1, None, None]  # (B, N, 1, 1)
    column = (corner[..., 0, None] + offsets)[:, :, None, :]  # (B, N, 1, W) pixel x of each window column
    row = (corner[..., 1, None] + offsets)[:, :, :, None]  # (B, N, W, 1) pixel y of each window row
    rx, ry = column - p[..., 0, None, None], row - p[..., 1, None, None]
    t = ((rx * dx + ry * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0.0, 1.0)  # (B, N, W, W)
    dist2 = (rx - t * dx) ** 2 + (ry - t * dy) ** 2
    ink = torch.exp(-dist2 / (2.0 * sigma * sigma))
    # window pixels outside the image all go to one extra bin past the channels' pixels, dropped at the end
    x, y = column.long(), row.long()
    inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)  # (B, N, W, W)
    index = (_SEG_CHANNEL.to(device)[None, :, None, None] * size + y) * size + x
    outside = SKETCH_CHANNELS * size * size
    index = torch.where(inside, index, torch.full_like(index, outside))
    canvas = torch.zeros(batch, outside + 1, device=device, dtype=dtype)
    canvas = canvas.scatter_reduce(1, index.reshape(batch, -1), ink.reshape(batch, -1), reduce="amax")
    return canvas[:, :outside].reshape(-1, SKETCH_CHANNELS, size, size)  # -1: exporters keep the rest static


def sketch_for(geometry: torch.Tensor | None, features: torch.Tensor, max_size: int | None = None) -> torch.Tensor:
    """The sketch a generator's render draws: at the resolution and dtype of its half-resolution `features`
    (B, C, S/2, S/2); with `max_size` (the config's `sketch_max_size`), larger feature maps get it drawn at that size
    and upsampled (bilinear). `geometry` is required (a one-line error names what is missing)."""
    if geometry is None:
        raise ValueError("this generator draws the geometry sketch: pass the predicted landmarks")
    size = features.shape[-1]
    sketch = geometry_sketch(geometry, min(size, max_size or size))
    if sketch.shape[-1] != size:
        sketch = F.interpolate(sketch, size=(size, size), mode="bilinear", align_corners=False)
    return sketch.to(features.dtype)
