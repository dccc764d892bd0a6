"""The Multi-face Reenactor (paper Fig. 1, right; upstream `NAS_GAN`) and AdaConv.

The searched topology is hard-coded as decoded in upstream-facts §3.2 (no NAS machinery): a stem (7x7, two stride-2
3x3), nine cells at 1/4 resolution (dws, residual x4, dws, 1x1 x3), each followed by an AdaConv that injects the
fuser's latent, and a decoder (two stride-2 transposed convs, 7x7, tanh). InstanceNorm without affine and without
running stats (train and eval behave the same), ReLU, zero padding, bias-free convolutions. No encoder-decoder skips.

Generators share one interface so inference can cache the per-reference part:
`encode(reference) -> features` (everything before the first AdaConv) and `render(features, latent) -> image`.
"""

from __future__ import annotations

import torch
from torch import nn

from apb2face.models.config import ModelConfig

# paper widths at generator_width = 1.0
STEM = (24, 40, 88)
CELL = 152
LAST_CELL = 128
DECODER = (104, 24)
# the nine searched cells in order (upstream alpha argmax [3,2,2,2,2,3,0,0,0])
CELL_OPS = ("dws", "residual", "residual", "residual", "residual", "dws", "conv1x1", "conv1x1", "conv1x1")
DWS_EXPANSION = 4


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10% (the usual NAS rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_in_relu(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.InstanceNorm2d(cout, affine=False, track_running_stats=False),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class DwsBlock(nn.Module):
    """Inverted-residual cell: 1x1 expand, depthwise 3x3, 1x1 project; identity or 1x1 shortcut; ReLU after the add."""

    def __init__(self, cin: int, cout: int, expansion: int = DWS_EXPANSION) -> None:
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            *conv_in_relu(cin, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
            nn.InstanceNorm2d(hidden, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
            *conv_in_relu(hidden, cout, 1, relu=False),
        )
        self.shortcut = nn.Identity() if cin == cout else nn.Sequential(*conv_in_relu(cin, cout, 1, relu=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + IN, identity shortcut, ReLU after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_in_relu(channels, channels, 3), *conv_in_relu(channels, channels, 3, relu=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


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


class AdaConv(nn.Module):
    """Latent-driven per-channel affine y = scale(z) * x + shift(z) (upstream: a per-sample depthwise 1x1 conv run
    in a Python loop over the batch; here one broadcast multiply-add).

    init="identity": scale = 1 + delta(z) with zero-initialised last layers, so at step 0 every AdaConv passes its
    input through unchanged. init="normal": upstream's N(0, 0.02) everywhere and scale = w(z) directly.
    """

    def __init__(self, channels: int, latent_dim: int = 256, init: str = "identity") -> None:
        super().__init__()
        self.identity = init == "identity"
        self.weight = nn.Sequential(
            nn.Linear(latent_dim, latent_dim), nn.ReLU(inplace=True), nn.Linear(latent_dim, channels)
        )
        self.bias = nn.Sequential(
            nn.Linear(latent_dim, latent_dim), nn.ReLU(inplace=True), nn.Linear(latent_dim, channels)
        )

    def reset_parameters(self) -> None:
        for m in (*self.weight, *self.bias):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
        if self.identity:
            for last in (self.weight[-1], self.bias[-1]):
                nn.init.zeros_(last.weight)

    def scale_shift(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight(latent)
        if self.identity:
            scale = scale + 1.0
        return scale, self.bias(latent)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift(latent)
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


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
            nn.InstanceNorm2d(d0, affine=False, track_running_stats=False),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(d0, d1, 3, 2, 1, output_padding=1, bias=False),
            nn.InstanceNorm2d(d1, affine=False, track_running_stats=False),
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
