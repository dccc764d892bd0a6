"""`mobile`: a CPU-fast reenactor with the paper's semantics (latent-driven AdaConvs on a 1/4-resolution trunk).

Design "B" of the efficient-generator study (measured there as the best speed/risk trade-off on 2 cores), plus a
reference skip path whose cost is paid once per reference:

* reference encoder (runs once per reference, cached by inference): 3x3 convs 3->24 (full res), 24->48 (s2),
  48->96 (s2), InstanceNorm + ReLU, then trunk block 0 and its InstanceNorm; and, for the skip path, half-resolution
  reference features (48 channels after the second conv, squeezed to 32 by a 1x1) and the reference's pixels;
* trunk: nine depthwise-separable residual blocks at 96 channels, `[dw3x3 -> 1x1 -> ReLU -> dw3x3 -> 1x1] + x -> ReLU`,
  each followed by InstanceNorm (no affine) and an AdaConv. InstanceNorm sits only where it carries meaning (the
  AdaIN-like point where the latent sets the per-channel statistics); inside blocks there is no norm at all, which
  keeps train and eval identical at any batch size (BatchNorm would need batch >= 8 and drift at CPU batch sizes);
* decoder: `1x1 96->48 -> nearest x2 -> dw3x3 -> ReLU`, merge with the cached half-resolution reference features
  (1x1, InstanceNorm, ReLU) and a tenth AdaConv there (where the mouth's shape is resolved), `1x1 48->16 -> nearest
  x2 -> dw3x3 -> ReLU`, merge with the reference pixels (1x1, ReLU), 3x3 16->3 added to the reference's pixels in
  tanh's input space (atanh), tanh: the head starts at zero, so the untrained model returns the reference and
  training spends its steps on what differs from it. No transposed convs (no checkerboard), no PixelShuffle on the
  per-frame path's feature maps (slow DepthToSpace), no 7x7 head.

Without the skip path every pixel is rebuilt through the 1/4-resolution bottleneck, which stays blurry for the
first thousands of CPU steps (as the paper topology does); with it, appearance is copied and training goes into what
the latent changes. The cached features are one tensor at half resolution: [trunk features space-to-depth packed
(96 @ S/4 -> 24 @ S/2, unpacked exactly per frame), the skip features' share of the half-resolution merge (its 1x1
conv over the concatenation is a sum of one conv per part; 48), reference pixels packed (3 @ S -> 12; with the warp
the image itself, its memory read as 12 channels)].

With `geometry_sketch` (models/sketch.py) the fuser's landmarks, drawn as contours at half resolution, enter the
trunk (average-pooled to 1/4, a zero-initialised 1x1 added to the cached features, so a model without the sketch
warm-starts this one exactly) and the half-resolution merge (channels appended last), not the full-resolution one:
there the output already starts from the reference's pixels, and in 15-minute runs leaving it out measured the same
or better (SSIM 0.599 / 0.599 vs 0.598 / 0.595, seeds 0 / 1; docs/results.md). Cost at 256 px: 0.005 GMAC of convs
plus drawing the sketch.

Two options trade the design study's layout for speed at 256 px (both off by default, so every earlier checkpoint
loads as it was):

* `trunk_stride: 8`: one more stride-2 conv before the trunk and one more upsampler after it, so the nine blocks run
  on a quarter of the pixels (the cached trunk features are packed 4x4 into the half-resolution tensor);
* `subpixel_head: true`: no full-resolution tail. The reference's pixels, packed 2x2 into 12 channels, join at half
  resolution, and a 3x3 head predicts each 2x2 block's change there; one DepthToSpace of 12 channels unpacks the
  image. The atanh of the packed pixels (the base the change is added to) is cached with the reference.

A third option, `reference_warp: true`, makes the output a change of the reference *moved into place*: the
half-resolution decoder features predict a flow (one vector per 2x2 block, zero-initialised, bounded like the `skip`
warp's), the cached pixels are sampled along it (models/reference_warp.py `warp_packed`, bilinear, returning them
packed), and the head's change is added to those. Without it, a head turn has to be repainted through the 1/8 trunk
and comes out smeared; with it, 15 minutes of training reach SSIM 0.67 instead of 0.60 (docs/realtime.md). It costs
about 1.6 ms a frame at 256 px on one core: the flow's 3x3 convolution 0.8 ms, the four gathers 0.4, the atanh of
the moved pixels 0.3 and unpacking the reference 0.2 (docs/realtime.md; the last is gone since the image is cached
unpacked, and the flow's convolution is now computed as its taps, see `_flow`).

At 256 px with the `realtime` width (before the warp), ONNX Runtime on one core: the frame graph takes 31 ms with
neither, 27 ms with the sub-pixel head, 22 ms with the 1/8 trunk, 18.5 ms with both (drawing the sketch and the fuser
included). `decoder_width` narrows the decoder alone (the preset's 0.33: 16 channels at half resolution, where most
of a 256 px frame's work is); with it, the cached skip share (`_skip_share`), the flow as taps (`_flow`) and the
sketch drawn at most at 64 px (`sketch_max_size`), the preset's frame graph went from 13.0 to 8.9 ms in one A/B
(docs/realtime.md, "A cheaper frame graph").

At 256x256: 7.5x fewer generator MACs than `paper` (1.32 vs 9.87 GMAC), 6.9x with the fuser, 9.5x per frame with
the reference cached (see `apb2face bench`). Interface as every generator (models/registry.py): `encode`, `render`,
`forward`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apb2face.models.blocks import AdaConv, instance_norm, make_divisible
from apb2face.models.config import ModelConfig
from apb2face.models.reference_warp import FLOW_LIMIT, warp_packed
from apb2face.models.sketch import SKETCH_CHANNELS, sketch_for

ENCODER = (24, 48, 96)
TRUNK = 96
DECODER = (48, 16)
SKIP = 32  # half-resolution reference feature channels on the skip path
NUM_BLOCKS = 9
PIXEL_LIMIT = 0.995  # reference pixels are clamped to this before atanh (the output residual's base)


class SeparableBlock(nn.Module):
    """Two depthwise-separable 3x3 convs with a ReLU between them, identity shortcut, ReLU after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1),
        )
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
        d0, d1 = (make_divisible(c * (config.decoder_width or w)) for c in DECODER)
        skip = make_divisible(SKIP * w)
        self.trunk_channels, self.skip_channels, self.half_channels = trunk, skip, d0
        # the trunk's features travel packed into the half-resolution cache: `pack` x `pack` pixels per position
        self.pack = config.trunk_stride // 2
        if trunk % (self.pack * self.pack):
            raise ValueError(f"trunk channels ({trunk}) must divide by {self.pack * self.pack} at trunk_stride 8")
        sketch = SKETCH_CHANNELS if config.geometry_sketch else 0
        self.stem_half = nn.Sequential(
            nn.Conv2d(3, e0, 3, 1, 1, bias=False),
            instance_norm(e0),
            nn.ReLU(inplace=True),
            nn.Conv2d(e0, e1, 3, 2, 1, bias=False),
            instance_norm(e1),
            nn.ReLU(inplace=True),
        )
        self.stem_quarter = nn.Sequential(
            nn.Conv2d(e1, e2, 3, 2, 1, bias=False),
            instance_norm(e2),
            nn.ReLU(inplace=True),
            *(
                [nn.Conv2d(e2, trunk, 1, bias=False), instance_norm(trunk), nn.ReLU(inplace=True)]
                if e2 != trunk
                else []
            ),
        )
        # trunk_stride 8: one more stride-2 conv before the trunk and one more upsampler after it
        self.stem_eighth = (
            nn.Sequential(nn.Conv2d(trunk, trunk, 3, 2, 1, bias=False), instance_norm(trunk), nn.ReLU(inplace=True))
            if config.trunk_stride == 8
            else None
        )
        self.up_quarter = UpBlock(trunk, trunk) if config.trunk_stride == 8 else None
        self.skip = nn.Sequential(nn.Conv2d(e1, skip, 1, bias=False), instance_norm(skip), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(SeparableBlock(trunk) for _ in range(NUM_BLOCKS))
        self.norms = nn.ModuleList(instance_norm(trunk) for _ in range(NUM_BLOCKS))
        self.adaconvs = nn.ModuleList(
            AdaConv(trunk, config.latent_dim, config.adaconv_init) for _ in range(NUM_BLOCKS)
        )
        self.sketch_in = nn.Conv2d(sketch, trunk, 1) if sketch else None
        self.up_half = UpBlock(trunk, d0)
        self.merge_half = nn.Sequential(nn.Conv2d(d0 + skip + sketch, d0, 1), instance_norm(d0), nn.ReLU(inplace=True))
        self.adaconv_half = AdaConv(d0, config.latent_dim, config.adaconv_init)
        if config.subpixel_head:
            # the reference's packed pixels (12 channels: each 2x2 block) join at half resolution; the head predicts
            # the change of each block, unpacked by one DepthToSpace of 12 channels at the very end
            self.up_full = None
            self.merge_full = nn.Sequential(nn.Conv2d(d0 + 12, d0, 1), nn.ReLU(inplace=True))
            self.head = nn.Conv2d(d0, 12, 3, 1, 1)
        else:
            self.up_full = UpBlock(d0, d1)
            self.merge_full = nn.Sequential(nn.Conv2d(d1 + 3, d1, 1), nn.ReLU(inplace=True))
            self.head = nn.Conv2d(d1, 3, 3, 1, 1)
        # reference_warp: where each output pixel is found in the reference, predicted at half resolution
        self.flow = nn.Conv2d(d0, 2, 3, 1, 1) if config.reference_warp else None
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
        for ada in (*self.adaconvs, self.adaconv_half):
            ada.reset_parameters()
        # output = reference until trained (see render); the flow starts at zero: an unwarped reference
        for start_at_zero in (self.head, self.flow):
            if start_at_zero is not None:
                nn.init.zeros_(start_at_zero.weight)
                nn.init.zeros_(start_at_zero.bias)
        if self.sketch_in is not None:  # the sketch starts as a no-op on the trunk (exact warm start)
            nn.init.zeros_(self.sketch_in.weight)
            nn.init.zeros_(self.sketch_in.bias)

    def encode(self, reference: torch.Tensor) -> torch.Tensor:
        """Everything that depends on the reference only, computed once per reference by inference: trunk features
        after block 0 (packed to half resolution), the half-resolution skip features' share of `merge_half` and the
        packed pixels (with `subpixel_head`: their atanh, the base the head's change is added to, so no frame computes
        it again; with `reference_warp` the unpacked image itself, which each frame moves before taking the atanh)."""
        half = self.stem_half(reference)
        trunk = self.stem_quarter(half)
        if self.stem_eighth is not None:
            trunk = self.stem_eighth(trunk)
        trunk = self.norms[0](self.blocks[0](trunk))
        if self.flow is not None:
            # the image as it is, its memory viewed as 12 half-resolution channels (a reshape, not a packing): the
            # warp gathers from the flat image, so no frame has to unpack it
            pixels = reference.reshape(reference.shape[0], 12, reference.shape[2] // 2, reference.shape[3] // 2)
        else:
            pixels = F.pixel_unshuffle(reference, 2)
            if self.config.subpixel_head:
                pixels = _atanh(pixels)
        return torch.cat([F.pixel_shuffle(trunk, self.pack), self._skip_share(self.skip(half)), pixels], dim=1)

    def render(
        self, features: torch.Tensor, latent: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> torch.Tensor:
        packed = self.trunk_channels // (self.pack * self.pack)
        trunk = F.pixel_unshuffle(features[:, :packed], self.pack)
        skip_share = features[:, packed : packed + self.half_channels]  # the skip features' part of merge_half
        # (B, 12, S/2, S/2): packed pixels, or their atanh; with the warp the image, its memory read as 12 channels
        pixels = features[:, packed + self.half_channels :]
        half: list[torch.Tensor] = []  # extra half-resolution inputs (the sketch)
        if self.sketch_in is not None:
            sketch = sketch_for(geometry, skip_share, self.config.sketch_max_size)
            half = [sketch]
            trunk = trunk + self.sketch_in(F.avg_pool2d(sketch, self.pack))
        batch = latent.shape[0]
        x = self.adaconvs[0](trunk, latent)
        for block, norm, ada in zip(self.blocks[1:], self.norms[1:], self.adaconvs[1:]):
            x = ada(norm(block(x)), latent)
        if self.up_quarter is not None:
            x = self.up_quarter(x)
        x = self.up_half(x)
        x = self.adaconv_half(self._merged_half(x, skip_share, *half), latent)
        if self.flow is not None:  # moved into place first (with `subpixel_head`: their atanh from here on)
            image = pixels.reshape(pixels.shape[0], 3, 2 * pixels.shape[2], 2 * pixels.shape[3])
            pixels = self._warped(x, image.expand(batch, -1, -1, -1))
        if self.up_full is None:
            # every output pixel is predicted at half resolution, as a change of its reference pixel in tanh's
            # input space (zero at the start: the untrained model returns the reference)
            x = self.merge_full(torch.cat([x, pixels.expand(batch, -1, -1, -1)], dim=1))
            return F.pixel_shuffle(torch.tanh(self.head(x) + pixels), 2)
        pixels = F.pixel_shuffle(pixels, 2)
        x = self.up_full(x)
        x = self.merge_full(torch.cat([x, pixels.expand(batch, -1, -1, -1)], dim=1))
        # the head predicts a change of the reference in tanh's input space (it starts at zero: the untrained model
        # returns the reference), so training goes into what differs from the reference from the first step
        return torch.tanh(self.head(x) + _atanh(pixels))

    def _skip_share(self, skip: torch.Tensor) -> torch.Tensor:
        """The skip features' part of the half-resolution merge (its 1x1 conv over [decoder, skip, sketch] channels
        is the sum of one conv per part): it depends on the reference only, so it is computed once, with it."""
        conv = self.merge_half[0]
        d0 = self.half_channels
        return F.conv2d(skip, conv.weight[:, d0 : d0 + self.skip_channels], conv.bias)

    def _merged_half(
        self, x: torch.Tensor, skip_share: torch.Tensor, sketch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """merge_half on [x, skip, sketch] with the skip's share already computed: no per-frame concatenation."""
        conv, norm, act = self.merge_half
        d0 = self.half_channels
        merged = F.conv2d(x, conv.weight[:, :d0]) + skip_share
        if sketch is not None:
            merged = merged + F.conv2d(sketch, conv.weight[:, d0 + self.skip_channels :])
        return act(norm(merged))

    def _flow(self, features: torch.Tensor) -> torch.Tensor:
        """self.flow (a 3x3 conv to 2 channels) written as a 1x1 conv to its 9 taps x 2 channels and a sum of the 9
        shifted taps: the same numbers, 5x faster in ONNX Runtime, whose blocked convolutions pad 2 output channels
        to 16."""
        assert self.flow is not None
        out_channels, k = self.flow.out_channels, self.flow.kernel_size[0]
        taps = F.conv2d(features, self.flow.weight.permute(2, 3, 0, 1).reshape(k * k * out_channels, -1, 1, 1))
        taps = F.pad(taps, (k // 2,) * 4)
        h, w = features.shape[-2:]
        flow = self.flow.bias.view(1, -1, 1, 1)
        for i in range(k * k):
            dy, dx = divmod(i, k)
            flow = flow + taps[:, i * out_channels : (i + 1) * out_channels, dy : dy + h, dx : dx + w]
        return flow

    def _warped(self, features: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The reference's cached pixels (B, 3, S, S) moved by the flow the half-resolution `features`
        predict (one vector per 2x2 block): the base the head's change is added to (with `subpixel_head`, its
        atanh). A change of the unmoved reference has to repaint every pixel a head turn shifts, through a trunk
        at 1/8 of the crop, and comes out smeared; a flow moves them exactly, for a few operations per pixel."""
        assert self.flow is not None
        warped = warp_packed(pixels, FLOW_LIMIT * torch.tanh(self._flow(features).float()))
        return _atanh(warped) if self.config.subpixel_head else warped

    def forward(
        self, reference: torch.Tensor, latent: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.render(self.encode(reference), latent, geometry)


def _atanh(pixels: torch.Tensor) -> torch.Tensor:
    """atanh of pixels clamped to +-PIXEL_LIMIT, written with log (ONNX has no atanh export)."""
    base = pixels.clamp(-PIXEL_LIMIT, PIXEL_LIMIT)
    return 0.5 * torch.log((1 + base) / (1 - base))
