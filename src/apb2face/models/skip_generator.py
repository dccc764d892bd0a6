"""`skip`: a reenactor with a reference skip path, so appearance is copied instead of re-learned.

The paper's reenactor (models/generator.py) has no encoder-decoder skips: every pixel of the output is rebuilt
through a 1/4-resolution bottleneck, which takes the paper's ~100k GPU steps to become sharp. Here the reference's
half-resolution features and its pixels (space-to-depth) travel with the cached reference features and re-enter the
decoder, so a few hundred CPU steps give a sharp face and training time goes into what the latent must change
(mouth, eyes, pose). The latent still enters only through AdaConvs (per-channel scale/shift), as in the paper:
one after each trunk block and one at half resolution in the decoder, where the mouth's shape is resolved.

With `geometry_sketch` the fuser's predicted landmarks, drawn as contours at half resolution (models/sketch.py),
also enter the trunk's input and both decoder merges: AdaConv says what the geometry is, the sketch where it is.
Their input channels come last in each concatenation, so a model trained without the sketch warm-starts a sketch
model exactly (zero weights for the new channels; training/trainer.py `init_from`).
With `reference_warp` the decoder's half-resolution features also move the reference's pixels into place and paste
them over the output where they fit (models/reference_warp.py): texture is copied, not averaged.

    encode(reference (B,3,S,S)) -> features (B, SKIP + 12, S/2, S/2)     once per reference
    render(features, latent (B,L)[, geometry (B,K,2)]) -> image (B,3,S,S) in [-1, 1]          per frame
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apb2face.models.blocks import AdaConv, ResidualBlock, instance_norm, make_divisible
from apb2face.models.config import ModelConfig
from apb2face.models.reference_warp import ReferenceWarp
from apb2face.models.sketch import SKETCH_CHANNELS, sketch_for

SKIP = 64  # half-resolution reference feature channels
TRUNK = 96  # quarter-resolution trunk channels
NUM_BLOCKS = 6
FULL = 16  # full-resolution decoder channels


def _conv(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(instance_norm(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SkipGenerator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.generator_width
        skip, trunk, full = (make_divisible(c * w) for c in (SKIP, TRUNK, FULL))
        self.skip_channels = skip
        sketch = SKETCH_CHANNELS if config.geometry_sketch else 0
        self.encoder = nn.Sequential(_conv(3, full), _conv(full, skip, stride=2))  # (B, skip, S/2, S/2)
        self.down = _conv(skip + sketch, trunk, stride=2)  # (B, trunk, S/4, S/4)
        self.blocks = nn.ModuleList(ResidualBlock(trunk) for _ in range(NUM_BLOCKS))
        self.adaconvs = nn.ModuleList(
            AdaConv(trunk, config.latent_dim, config.adaconv_init) for _ in range(NUM_BLOCKS)
        )
        self.up_half = _conv(trunk, skip)
        self.merge_half = _conv(2 * skip + sketch, skip)
        self.adaconv_half = AdaConv(skip, config.latent_dim, config.adaconv_init)
        self.up_full = _conv(skip, full, norm=False)
        self.merge_full = _conv(full + 3 + sketch, full, norm=False)
        self.head = nn.Conv2d(full, 3, 3, 1, 1)
        self.warp = ReferenceWarp(skip) if config.reference_warp else None
        for ada in (*self.adaconvs, self.adaconv_half):
            ada.reset_parameters()

    def encode(self, reference: torch.Tensor) -> torch.Tensor:
        """Reference-only part, cached by inference: half-resolution features + the reference's pixels."""
        return torch.cat([self.encoder(reference), F.pixel_unshuffle(reference, 2)], dim=1)

    def render(
        self, features: torch.Tensor, latent: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> torch.Tensor:
        skip, pixels = features[:, : self.skip_channels], F.pixel_shuffle(features[:, self.skip_channels :], 2)
        half: list[torch.Tensor] = []  # extra half-resolution inputs (the sketch)
        full: list[torch.Tensor] = []
        if self.config.geometry_sketch:
            sketch = sketch_for(geometry, skip, self.config.sketch_max_size)
            half, full = [sketch], [F.interpolate(sketch, scale_factor=2.0, mode="bilinear", align_corners=False)]
        x = self.down(torch.cat([skip, *half], dim=1))  # (B, trunk, S/4, S/4)
        for block, ada in zip(self.blocks, self.adaconvs):
            x = ada(block(x), latent)
        x = self.up_half(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, skip, S/2, S/2)
        x = self.adaconv_half(self.merge_half(torch.cat([x, skip, *half], dim=1)), latent)
        half_features = x
        x = self.up_full(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, full, S, S)
        x = self.merge_full(torch.cat([x, pixels, *full], dim=1))
        image = torch.tanh(self.head(x))
        return image if self.warp is None else self.warp(half_features, pixels, image)

    def forward(
        self, reference: torch.Tensor, latent: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.render(self.encode(reference), latent, geometry)
