"""Conditional PatchGAN discriminator (pix2pix 70x70, the official V2 code's `NLayerDiscriminator`
in `model/patchgan_dis.py`, n_layers=3).

Input = concat(reference, real-or-generated image) (6 channels); output = a map of patch logits (30x30 at 256 px).
"""

from __future__ import annotations

import torch
from torch import nn

from apb2face.models.config import ModelConfig


class PatchDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ndf = config.discriminator_width
        widths = (ndf, ndf * 2, ndf * 4, ndf * 8)
        layers: list[nn.Module] = [nn.Conv2d(6, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            stride = 2 if i < len(widths) - 2 else 1
            layers += [
                nn.Conv2d(a, b, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(b, affine=False, track_running_stats=False),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([reference, image], dim=1))
