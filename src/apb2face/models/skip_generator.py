"""`skip`: a reenactor with a reference skip path, so appearance is copied instead of re-learned.

The paper's reenactor (models/generator.py) has no encoder-decoder skips: every pixel of the output is rebuilt
through a 1/4-resolution bottleneck, which takes the paper's ~100k GPU steps to become sharp. Here the reference's
half-resolution features and its pixels (space-to-depth) travel with the cached reference features and re-enter the
decoder, so a few hundred CPU steps give a sharp face and training time goes into what the latent must change
(mouth, eyes, pose). The latent still enters only through AdaConvs (per-channel scale/shift), as in the paper:
one after each trunk block and one at half resolution in the decoder, where the mouth's shape is resolved.

    encode(reference (B,3,S,S)) -> features (B, SKIP + 12, S/2, S/2)     once per reference
    render(features, latent (B,L)) -> image (B,3,S,S) in [-1, 1]          per frame
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apb2face.models.config import ModelConfig
from apb2face.models.generator import AdaConv, make_divisible

SKIP = 64  # half-resolution reference feature channels
TRUNK = 96  # quarter-resolution trunk channels
NUM_BLOCKS = 6
FULL = 16  # full-resolution decoder channels


def _conv(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=False, track_running_stats=False))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """3x3 conv, IN, ReLU, 3x3 conv, IN, + identity, ReLU (the paper's `residual` cell)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=False, track_running_stats=False), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=False, track_running_stats=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class SkipGenerator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.generator_width
        skip, trunk, full = (make_divisible(c * w) for c in (SKIP, TRUNK, FULL))
        self.skip_channels = skip
        self.encoder = nn.Sequential(_conv(3, full), _conv(full, skip, stride=2))  # (B, skip, S/2, S/2)
        self.down = _conv(skip, trunk, stride=2)  # (B, trunk, S/4, S/4)
        self.blocks = nn.ModuleList(ResidualBlock(trunk) for _ in range(NUM_BLOCKS))
        self.adaconvs = nn.ModuleList(AdaConv(trunk, config.latent_dim, config.adaconv_init)
                                      for _ in range(NUM_BLOCKS))
        self.up_half = _conv(trunk, skip)
        self.merge_half = _conv(2 * skip, skip)
        self.adaconv_half = AdaConv(skip, config.latent_dim, config.adaconv_init)
        self.up_full = _conv(skip, full, norm=False)
        self.merge_full = _conv(full + 3, full, norm=False)
        self.head = nn.Conv2d(full, 3, 3, 1, 1)
        for ada in (*self.adaconvs, self.adaconv_half):
            ada.reset_parameters()

    def encode(self, reference: torch.Tensor) -> torch.Tensor:
        """Reference-only part, cached by inference: half-resolution features + the reference's pixels."""
        return torch.cat([self.encoder(reference), F.pixel_unshuffle(reference, 2)], dim=1)

    def render(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        skip, pixels = features[:, : self.skip_channels], F.pixel_shuffle(features[:, self.skip_channels:], 2)
        x = self.down(skip)  # (B, trunk, S/4, S/4)
        for block, ada in zip(self.blocks, self.adaconvs):
            x = ada(block(x), latent)
        x = self.up_half(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, skip, S/2, S/2)
        x = self.adaconv_half(self.merge_half(torch.cat([x, skip], dim=1)), latent)
        x = self.up_full(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, full, S, S)
        x = self.merge_full(torch.cat([x, pixels], dim=1))
        return torch.tanh(self.head(x))

    def forward(self, reference: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.render(self.encode(reference), latent)
