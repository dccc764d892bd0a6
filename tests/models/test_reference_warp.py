"""The reference warp head of the `skip` generator: a no-op at start, pastes and moves the reference when trained."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.reference_warp import (
    FLOW_LIMIT,
    MASK_GAIN,
    MASK_OFFSET,
    ReferenceWarp,
    identity_grid,
    warp_packed,
)

from .warm_start_check import assert_warm_start_is_exact


def _images(size: int = 16, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    features = torch.randn(batch, 8, size // 2, size // 2, generator=g)
    reference = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    return features, reference, image


def _set_head(warp: ReferenceWarp, flow_x: float, flow_y: float, mask: float) -> None:
    """Biases that give this flow (grid units) and mask everywhere."""
    floor = torch.sigmoid(torch.tensor(-MASK_OFFSET))
    logit = (torch.logit(torch.tensor(mask) * (1 - floor) + floor).clamp(max=30.0) + MASK_OFFSET) / MASK_GAIN
    flow = torch.atanh(torch.tensor([flow_x, flow_y]) / FLOW_LIMIT)
    with torch.no_grad():
        warp.head.bias.copy_(torch.cat([flow, logit[None]]))


def test_a_new_head_leaves_the_image_exactly_as_rendered():
    features, reference, image = _images()
    out = ReferenceWarp(8)(features, reference, image)
    assert torch.equal(out, image)


def test_identity_grid_samples_every_pixel_at_its_centre():
    _, reference, _ = _images()
    grid = identity_grid(16, reference.device).expand(2, -1, -1, -1)
    sampled = torch.nn.functional.grid_sample(reference, grid, align_corners=False)
    torch.testing.assert_close(sampled, reference, rtol=0, atol=1e-6)


def test_the_flow_moves_the_reference_and_the_mask_sets_the_share_pasted():
    features, reference, image = _images()
    warp = ReferenceWarp(8)
    _set_head(warp, 0.0, 0.0, 1.0)
    warped, share = warp.paste(features, reference, reference)
    torch.testing.assert_close(warped, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(share, torch.ones_like(share), rtol=0, atol=1e-5)  # in place: agreement 1
    _set_head(warp, 2 / 16, 0.0, 1.0)  # one pixel to the right in grid units (the grid spans 2 over 16 pixels)
    warped, _ = warp.paste(features, reference, image)
    torch.testing.assert_close(warped[..., :-1], reference[..., 1:], rtol=0, atol=1e-5)
    _set_head(warp, 0.0, 0.0, 0.25)
    _, share = warp.paste(features, reference, reference)
    torch.testing.assert_close(share, torch.full_like(share, 0.25), rtol=0, atol=1e-5)


def test_the_reference_is_pasted_only_where_its_coarse_content_matches_the_image():
    features, _, _ = _images()
    smooth = torch.zeros(2, 3, 16, 16)
    smooth[..., 8:] = 0.8  # right half bright
    image = smooth.clone()
    image[..., :6, :] = -0.8  # a top band the reference lacks (an opened mouth, a moved head)
    texture = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.04
    warp = ReferenceWarp(8)
    _set_head(warp, 0.0, 0.0, 1.0)
    out = warp(features, smooth + texture, image)
    assert (out[..., 12:, :] - (smooth + texture)[..., 12:, :]).abs().max() < 0.02  # fits: the textured copy
    torch.testing.assert_close(out[..., :2, :], image[..., :2, :], rtol=0, atol=1e-3)  # does not fit: the image


def test_the_mask_learns_to_open_from_zero_where_the_reference_is_right():
    features, reference, _ = _images()
    image = torch.nn.functional.avg_pool2d(reference, 3, 1, 1)  # a soft copy: the reference is the better one
    warp = ReferenceWarp(8)
    loss = (warp(features, reference, image) - reference).abs().mean()
    loss.backward()
    assert warp.head.bias.grad[2] < 0  # gradient descent raises the mask from its start at 0


def test_a_closing_mask_keeps_its_gradients():
    """Pushed below zero (the unmoved reference is worse than the image), the mask and flow still learn."""
    features, reference, _ = _images()
    image = torch.nn.functional.avg_pool2d(reference, 3, 1, 1)
    warp = ReferenceWarp(8)
    with torch.no_grad():
        warp.head.bias[2] = -3.0 / MASK_GAIN
    _, mask = warp.flow_and_mask(features)
    assert -0.0025 <= mask.min() and mask.max() < 0
    loss = (warp(features, reference, image) - image.roll(1, dims=-1)).abs().mean()
    loss.backward()
    assert warp.head.bias.grad[2] != 0 and warp.head.weight.grad[:2].abs().sum() > 0


def test_a_new_head_learns_a_shift():
    features, reference, _ = _images(size=32, batch=1)
    smooth = torch.nn.functional.avg_pool2d(reference, 5, 1, 2)  # a smooth image, so the flow's gradient reaches far
    target = torch.roll(smooth, shifts=-1, dims=-1)  # the content moved one pixel left
    warp = ReferenceWarp(8)
    _set_head(warp, 0.0, 0.0, 1.0)
    optimiser = torch.optim.Adam(warp.parameters(), lr=3e-3)
    for _ in range(200):
        optimiser.zero_grad()
        loss = (warp(features, smooth, smooth)[..., 2:-2, 2:-2] - target[..., 2:-2, 2:-2]).abs().mean()
        loss.backward()
        optimiser.step()
    flow, _ = warp.flow_and_mask(features)
    assert flow[:, 0, 4:-4, 4:-4].mean().item() == pytest.approx(2 / 32, rel=0.2)


def test_the_flow_is_bounded():
    features, _, _ = _images()
    warp = ReferenceWarp(8)
    with torch.no_grad():
        warp.head.bias[:2] = 100.0
    flow, _ = warp.flow_and_mask(features)
    assert flow.max() <= FLOW_LIMIT


def test_only_the_skip_and_mobile_generators_have_it():
    with pytest.raises(ValueError, match="reference_warp needs generator .skip. or .mobile."):
        ModelConfig(image_size=64, generator="paper", reference_warp=True)


def test_a_checkpoint_without_the_warp_warm_starts_one_with_it_exactly(tmp_path):
    plain = ModelConfig(image_size=64, generator="skip", geometry_sketch=True, adaconv_init="normal")
    torch.manual_seed(0)
    assert_warm_start_is_exact(tmp_path, APB2Face(plain), dataclasses.replace(plain, reference_warp=True))


def test_the_packed_warp_is_grid_sample_with_one_flow_per_block():
    # what `mobile` runs (four gathers, fast in ONNX Runtime) against grid_sample on the unpacked image with the
    # flow upsampled by nearest: the same bilinear sampling, border padding included (flows up to 20 % of the side)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    flow = (torch.rand(2, 2, 16, 16, generator=g) - 0.5) * 0.4
    full = F.interpolate(flow, scale_factor=2.0, mode="nearest").permute(0, 2, 3, 1)
    expected = F.grid_sample(
        image, identity_grid(32, image.device) + full, mode="bilinear", padding_mode="border", align_corners=False
    )
    moved = F.pixel_shuffle(warp_packed(image, flow), 2)
    torch.testing.assert_close(moved, expected, atol=1e-5, rtol=0)
    # no flow: every pixel, the last row and column included, exactly as it was
    assert torch.equal(warp_packed(image, torch.zeros_like(flow)), F.pixel_unshuffle(image, 2))
