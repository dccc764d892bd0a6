"""`mobile`: a CPU-fast reenactor with the paper's semantics (nine latent-driven AdaConvs on a 1/4-resolution trunk).

Design "B" of docs/reference efficient-generators.md, measured there as the best speed/risk trade-off on 2 cores:

* reference encoder (runs once per reference, cached by inference): 3x3 convs 3->24 (full res), 24->48 (s2),
  48->96 (s2), InstanceNorm + ReLU, then trunk block 0 and its InstanceNorm;
* trunk: nine depthwise-separable residual blocks at 96 channels, `[dw3x3 -> 1x1 -> ReLU -> dw3x3 -> 1x1] + x -> ReLU`,
  each followed by InstanceNorm (no affine) and an AdaConv. InstanceNorm sits only where it carries meaning (the
  AdaIN-like point where the latent sets the per-channel statistics); inside blocks there is no norm at all, which
  keeps train and eval identical at any batch size (BatchNorm would need batch >= 8 and drift at CPU batch sizes);
* decoder: `1x1 96->48 -> nearest x2 -> dw3x3 -> ReLU`, `1x1 48->16 -> nearest x2 -> dw3x3 -> ReLU`, 3x3 16->3, tanh.
  No transposed convs (no checkerboard), no PixelShuffle (slow DepthToSpace in ONNX Runtime), no 7x7 head.

At 256x256: ~11x fewer MACs than `paper` in total, ~12x fewer per frame with the encoder cached (see
`apb2face bench`). Interface as every generator (models/registry.py): `encode`, `render`, `forward`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apb2face.models.config import ModelConfig
from apb2face.models.generator import AdaConv, make_divisible

ENCODER = (24, 48, 96)
TRUNK = 96
DECODER = (48, 16)
NUM_BLOCKS = 9


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class SeparableBlock(nn.Module):
    """Two depthwise-separable 3x3 convs with a ReLU between them, identity shortcut, ReLU after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


class UpBlock(nn.Module):
    """1x1 channel reduction at low resolution, nearest x2, depthwise 3x3 smoothing, ReLU: the cheapest upsampler
    measured on ONNX Runtime (0.44 ms vs 2.4 ms for a stride-2 transposed 3x3 at 96->48, 64->128 px)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)
        self.smooth = nn.Conv2d(cout, cout, 3, 1, 1, groups=cout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.smooth(F.interpolate(self.reduce(x), scale_factor=2.0, mode="nearest")))


class MobileGenerator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.generator_width
        e0, e1, e2 = (make_divisible(c * w) for c in ENCODER)
        trunk = make_divisible(TRUNK * w)
        d0, d1 = (make_divisible(c * w) for c in DECODER)
        self.stem = nn.Sequential(
            nn.Conv2d(3, e0, 3, 1, 1, bias=False), _norm(e0), nn.ReLU(inplace=True),
            nn.Conv2d(e0, e1, 3, 2, 1, bias=False), _norm(e1), nn.ReLU(inplace=True),
            nn.Conv2d(e1, e2, 3, 2, 1, bias=False), _norm(e2), nn.ReLU(inplace=True),
            *([nn.Conv2d(e2, trunk, 1, bias=False), _norm(trunk), nn.ReLU(inplace=True)] if e2 != trunk else []))
        self.blocks = nn.ModuleList(SeparableBlock(trunk) for _ in range(NUM_BLOCKS))
        self.norms = nn.ModuleList(_norm(trunk) for _ in range(NUM_BLOCKS))
        self.adaconvs = nn.ModuleList(AdaConv(trunk, config.latent_dim, config.adaconv_init) for _ in range(NUM_BLOCKS))
        self.decoder = nn.Sequential(UpBlock(trunk, d0), UpBlock(d0, d1), nn.Conv2d(d1, 3, 3, 1, 1), nn.Tanh())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # no norm inside blocks/decoder: activations keep their scale only with fan-aware init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.blocks:
            # each residual block starts as the identity, so the untrained trunk passes the reference through
            nn.init.zeros_(block.body[-1].weight)
        for ada in self.adaconvs:
            ada.reset_parameters()

    def encode(self, reference: torch.Tensor) -> torch.Tensor:
        """Everything before the first AdaConv: depends on the reference only, so inference computes it once."""
        return self.norms[0](self.blocks[0](self.stem(reference)))

    def render(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        x = self.adaconvs[0](features, latent)
        for block, norm, ada in zip(self.blocks[1:], self.norms[1:], self.adaconvs[1:]):
            x = ada(norm(block(x)), latent)
        return self.decoder(x)

    def forward(self, reference: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.render(self.encode(reference), latent)
