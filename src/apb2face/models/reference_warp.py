"""Reference warp: paste the reference's own pixels, moved by a predicted flow, over the rendered face.

Trained with L1 x 100 on a few CPU hours, a renderer draws what it cannot predict exactly as the average of the
possibilities: hair strands, skin texture and the edges of clothes come out soft, and every fine-tune softens them
further. Most of those pixels are already in the reference, only moved a little by the head's pose. So the decoder's
half-resolution features also predict a flow (where each output pixel is found in the reference) and a mask (how
much of the warped reference to keep there); the renderer's own image fills in what is new (an open mouth, closed
lids, a side of the face the reference does not show).

    warped = grid_sample(reference, identity + flow),    flow = FLOW_LIMIT * tanh(f)
    output = image + mask * agreement * (warped - image)
    mask = (sigmoid(MASK_GAIN * m - MASK_OFFSET) - sigmoid(-MASK_OFFSET)) / (1 - sigmoid(-MASK_OFFSET))
    agreement = exp(-|blur(image) - blur(warped)| / AGREEMENT_SCALE)     (blur: AGREEMENT_BLUR px box, mean over RGB)

`agreement` says where the warped reference is in place: where its coarse content matches the rendered face's, its
fine texture is the right one to keep; where a mouth opened or the head moved further than the flow, it does not
match and is not pasted, whatever the mask says. Without it the mask has to learn alone where the reference fits: on
the demo's held-out frames the unmoved reference is closer to the truth on 28-41 % of the pixels (error 2.5-5.7 grey
levels there against the rendered face's 5.8-12.1) but much worse on average (11-30 against 5.5-11), so a mask
without it opened by 0.004 in 150 steps. The rendered image enters the agreement detached: pasting must not pull the
rendered face towards the reference.

The head (f, m) starts at zero (no flow, mask exactly 0), so a checkpoint without it warm-starts exactly. At the
start the unmoved reference is worse than the rendered face almost everywhere, so the mask's gradient says "close";
a hard clamp at 0 would then stop every gradient for good (the mask, and the flow, whose gradient is the mask's
size). The shifted sigmoid never stops it: the mask only goes down to -sigmoid(-6) = -0.0025 (the output may leave
[-1, 1] by that share), and Adam, which scales each weight's step by its own gradient's size, still moves the flow
at full speed while the mask is near zero; once the flow aligns the reference, the mask opens where it fits.

`warp_packed` is the `mobile` generator's warp (`reference_warp` there): no mask, its output is the base the
head's change is added to, sampled straight from the packed pixels the generator caches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_OFFSET = 6.0
# sigmoid(-MASK_OFFSET) in float32, as the mask computes it, so the mask is exactly 0 at a zero logit
MASK_FLOOR = torch.sigmoid(torch.tensor(-MASK_OFFSET)).item()
# The mask logit is this times its conv's output: Adam moves every weight by about the learning rate per step, and
# the renderer's fine-tune rates (2e-5 to 5e-5) would take thousands of steps to lift a zero-initialised logit to the
# offset; the gain is a learning-rate multiplier for the mask alone that travels with the weights. The flow has none:
# while the mask is near zero its gradient is tiny and noisy, and Adam would turn that noise into full-size steps (a
# gain of 10 sent it 90 px astray in 100 steps).
MASK_GAIN = 10.0
# The flow is bounded: FLOW_LIMIT * tanh(conv), in grid units (2 = the crop's side): 0.15 is 7.5 % of the side, more
# than a head turn moves the face between a reference and a frame of the same person.
FLOW_LIMIT = 0.15
AGREEMENT_BLUR = 5  # px (odd): coarse enough that a sharp and a soft copy of the same content agree
AGREEMENT_SCALE = 0.05  # in [-1, 1] units: 3 grey levels of coarse difference keep 0.6 of the mask, 13 keep 0.02


def identity_grid(size: int, device: torch.device) -> torch.Tensor:
    """(1, size, size, 2) sampling grid in grid_sample's (x, y) convention (align_corners=False: pixel centres)."""
    centres = (torch.arange(size, device=device, dtype=torch.float32) * 2 + 1) / size - 1
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y], dim=-1)[None]


def warp_packed(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Move an image by a flow and return it in the packed layout the `mobile` generator's sub-pixel head adds its
    change to: `image` (B, C, 2H, 2W), `flow` (B, 2, H, W) is (x, y) in grid units, one vector per 2x2 block. Returns
    pixel_unshuffle(moved, 2) (B, 4C, H, W), where `moved` is what grid_sample(image, identity + flow, bilinear,
    border, align_corners=False) gives for the flow upsampled by nearest.

    Written as four gathers from the flattened image rather than grid_sample, because ONNX Runtime's GridSample
    takes 2.5 ms for a 256 px RGB image on one core and these ops 1 ms, half of the `realtime` frame's budget
    otherwise (torch's own grid_sample is fast; the exported graph is what streams run). The image comes unpacked
    (the generator caches it so with the reference), so no frame unpacks it."""
    b, c, size_y, size_x = image.shape
    h, w = size_y // 2, size_x // 2
    # each packed channel's pixel within its 2x2 block, in pixel_unshuffle's order: (0, 0), (0, 1), (1, 0), (1, 1)
    row = torch.tensor([0.0, 0.0, 1.0, 1.0], device=image.device).view(1, 4, 1, 1)
    col = torch.tensor([0.0, 1.0, 0.0, 1.0], device=image.device).view(1, 4, 1, 1)
    y_block = torch.arange(h, device=image.device, dtype=torch.float32).view(1, 1, h, 1) * 2
    x_block = torch.arange(w, device=image.device, dtype=torch.float32).view(1, 1, 1, w) * 2
    # source coordinates in pixels (grid units x size / 2), border padding: clamped to the image; the upper-left
    # neighbour at most one pixel before the last, so the right and lower ones always exist (a weight of 1 on the
    # last pixel keeps it exact there)
    x = (x_block + col + flow[:, :1].float() * (size_x / 2)).clamp(0, size_x - 1)  # (B, 4, H, W)
    y = (y_block + row + flow[:, 1:2].float() * (size_y / 2)).clamp(0, size_y - 1)
    x0, y0 = x.floor().clamp(max=size_x - 2), y.floor().clamp(max=size_y - 2)
    wx, wy = (x - x0).reshape(b, 1, -1), (y - y0).reshape(b, 1, -1)
    index = (y0 * size_x + x0).long().reshape(b, 1, -1).expand(b, c, 4 * h * w)
    flat = image.float().reshape(b, c, size_y * size_x)
    v00, v01 = torch.gather(flat, 2, index), torch.gather(flat, 2, index + 1)
    v10, v11 = torch.gather(flat, 2, index + size_x), torch.gather(flat, 2, index + size_x + 1)
    top, bottom = v00 + wx * (v01 - v00), v10 + wx * (v11 - v10)
    # gathered in packed order (channel, then position in the block, then block): a reshape packs it
    return (top + wy * (bottom - top)).reshape(b, 4 * c, h, w)


class ReferenceWarp(nn.Module):
    """Half-resolution features (B, C, S/2, S/2) -> flow (B, 2, S, S) in grid units and mask (B, 1, S, S) in
    (-0.0025, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(channels, 3, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def flow_and_mask(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = F.interpolate(self.head(features).float(), scale_factor=2.0, mode="bilinear", align_corners=False)
        mask = (torch.sigmoid(out[:, 2:3] * MASK_GAIN - MASK_OFFSET) - MASK_FLOOR) / (1 - MASK_FLOOR)
        return FLOW_LIMIT * torch.tanh(out[:, :2]), mask

    def paste(
        self, features: torch.Tensor, reference: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The warped reference (B, 3, S, S) and the share of it pasted over `image` (B, 1, S, S): mask x agreement."""
        flow, mask = self.flow_and_mask(features)
        grid = identity_grid(reference.shape[-1], reference.device) + flow.permute(0, 2, 3, 1)
        warped = F.grid_sample(reference.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        blur = AGREEMENT_BLUR
        coarse = F.avg_pool2d(image.detach().float() - warped, blur, 1, blur // 2, count_include_pad=False)
        agreement = torch.exp(-coarse.abs().mean(dim=1, keepdim=True) / AGREEMENT_SCALE)
        return warped, mask * agreement

    def forward(self, features: torch.Tensor, reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Blend the warped `reference` (B, 3, S, S) into `image` (B, 3, S, S), both in [-1, 1]."""
        warped, share = self.paste(features, reference, image)
        image = image.float()
        return image + share * (warped - image)
