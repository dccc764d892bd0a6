"""Building blocks shared by the generators: channel rounding, conv + InstanceNorm (+ ReLU), the residual cell and
AdaConv. Each lives here once; the generators import them, and their state-dict keys stay what they were.

InstanceNorm is always without affine and without running statistics, so train and eval behave the same.
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10% (the usual NAS rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def conv_in_relu(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> list[nn.Module]:
    """A bias-free conv ("same" padding for odd kernels), InstanceNorm and, unless `relu` is False, a ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), instance_norm(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class ResidualBlock(nn.Module):
    """The paper's `residual` cell: 3x3 conv + IN + ReLU, 3x3 conv + IN, identity shortcut, ReLU after the add.

    State-dict keys: body.0.weight and body.3.weight (the two convs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_in_relu(channels, channels, 3), *conv_in_relu(channels, channels, 3, relu=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


class AdaConv(nn.Module):
    """Latent-driven per-channel affine y = scale(z) * x + shift(z) (the official code's AdaConv is a per-sample
    depthwise 1x1 conv run in a Python loop over the batch; here one broadcast multiply-add).

    init="identity": scale = 1 + delta(z) with zero-initialised last layers, so at step 0 every AdaConv passes its
    input through unchanged. init="normal": the official code's N(0, 0.02) everywhere and scale = w(z) directly.
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
