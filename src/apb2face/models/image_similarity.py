"""Image similarity that more than one layer needs: SSIM scores evaluation (apb2face.evaluation.metrics) and the ONNX
export's INT8 check (apb2face.inference.export), so it lives below both. The definition is
apb2face.evaluation.metrics.SSIM_DEFINITION (Wang et al. 2004, as the official APB2FaceV2 `metrics/ssim`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def as_unit_batch(images: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] from uint8 or float [0, 1] images, HWC or NHWC."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) RGB images, got shape {arr.shape}")
    if not arr.flags.writeable:  # e.g. a read-only memory map of dataset frames: torch wants its own copy
        arr = arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float64)
    t = t if np.issubdtype(arr.dtype, np.floating) else t / 255.0
    return t.to(dtype)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Per-image SSIM (N,) of two image batches (or one pair -> shape (1,)); see SSIM_DEFINITION.

    The 2D Gaussian window is applied as two 1D passes (it is separable; same result to float round-off) on every
    channel as its own image: CPU grouped 2D convolutions are an order of magnitude slower. float32 is exact enough
    (variances of [0, 1] images vs C2 = 9e-4) and identical images still give exactly 1.
    """
    x, y = as_unit_batch(a, torch.float32), as_unit_batch(b, torch.float32)
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    n, c, h, w = x.shape
    g = _gaussian_1d(window, sigma).to(torch.float32)
    gh, gv = g.view(1, 1, 1, window), g.view(1, 1, window, 1)
    pad = window // 2

    def filt(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(n * c, 1, h, w)
        return F.conv2d(F.conv2d(t, gh, padding=(0, pad)), gv, padding=(pad, 0))

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return smap.reshape(n, -1).double().mean(dim=1).numpy()
