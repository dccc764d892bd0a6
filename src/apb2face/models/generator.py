"""The Multi-face Reenactor (paper Fig. 1, right; the official code's `NAS_GAN` in `model/NAS_GAN.py`).

The searched topology is hard-coded as decoded from the official `model/NAS_GAN_arch.pt` (cell op = argmax of its
`alpha` logits; no NAS machinery): a stem (7x7, two stride-2
3x3), nine cells at 1/4 resolution (dws, residual x4, dws, 1x1 x3), each followed by an AdaConv that injects the
fuser's latent, and a decoder (two stride-2 transposed convs, 7x7, tanh). InstanceNorm without affine and without
running stats (train and eval behave the same), ReLU, zero padding, bias-free convolutions. No encoder-decoder skips.

Generators share one interface so inference can cache the per-reference part:
`encode(reference) -> features` (everything before the first AdaConv) and `render(features, latent) -> image`.
"""

from __future__ import annotations

import torch
from torch import nn

from apb2face.models.blocks import AdaConv, ResidualBlock, conv_in_relu, instance_norm, make_divisible
from apb2face.models.config import ModelConfig

# paper widths at generator_width = 1.0
STEM = (24, 40, 88)
CELL = 152
LAST_CELL = 128
DECODER = (104, 24)
# the nine searched cells in order (upstream alpha argmax [3,2,2,2,2,3,0,0,0])
CELL_OPS = ("dws", "residual", "residual", "residual", "residual", "dws", "conv1x1", "conv1x1", "conv1x1")
DWS_EXPANSION = 4


class DwsBlock(nn.Module):
    """Inverted-residual cell: 1x1 expand, depthwise 3x3, 1x1 project; identity or 1x1 shortcut; ReLU after the add."""

    def __init__(self, cin: int, cout: int, expansion: int = DWS_EXPANSION) -> None:
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            *conv_in_relu(cin, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
            instance_norm(hidden),
            nn.ReLU(inplace=True),
            *conv_in_relu(hidden, cout, 1, relu=False),
        )
        self.shortcut = nn.Identity() if cin == cout else nn.Sequential(*conv_in_relu(cin, cout, 1, relu=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def make_cell(op: str, cin: int, cout: int) -> nn.Module:
    if op == "dws":
        return DwsBlock(cin, cout)
    if op == "residual":
        assert cin == cout, "residual cells keep their width"
        return ResidualBlock(cin)
    if op == "conv1x1":
        # upstream calls this op "skip", but it is a plain 1x1 conv + IN + ReLU with no identity path
        return nn.Sequential(*conv_in_relu(cin, cout, 1))
    raise ValueError(f"unknown cell op {op!r}")


class PaperGenerator(nn.Module):
    """The official NAS_GAN topology (4,085,200 parameters at generator_width 1.0)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.generator_width
        s0, s1, s2 = (make_divisible(c * w) for c in STEM)
        cell, last = make_divisible(CELL * w), make_divisible(LAST_CELL * w)
        d0, d1 = (make_divisible(c * w) for c in DECODER)
        self.stem = nn.Sequential(*conv_in_relu(3, s0, 7), *conv_in_relu(s0, s1, 3, 2), *conv_in_relu(s1, s2, 3, 2))
        widths = [s2] + [cell] * (len(CELL_OPS) - 1) + [last]
        self.cells = nn.ModuleList(make_cell(op, widths[i], widths[i + 1]) for i, op in enumerate(CELL_OPS))
        self.adaconvs = nn.ModuleList(
            AdaConv(widths[i + 1], config.latent_dim, config.adaconv_init) for i in range(len(CELL_OPS))
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(last, d0, 3, 2, 1, output_padding=1, bias=False),
            instance_norm(d0),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(d0, d1, 3, 2, 1, output_padding=1, bias=False),
            instance_norm(d1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d1, 3, 7, 1, 3, bias=False),
            nn.Tanh(),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        for ada in self.adaconvs:
            ada.reset_parameters()

    def encode(self, reference: torch.Tensor) -> torch.Tensor:
        """Everything before the first AdaConv: depends on the reference image only, so it can be cached."""
        return self.cells[0](self.stem(reference))

    def render(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        x = self.adaconvs[0](features, latent)
        for cell, ada in zip(self.cells[1:], self.adaconvs[1:]):
            x = ada(cell(x), latent)
        return self.decoder(x)

    def forward(self, reference: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.render(self.encode(reference), latent)
