"""The `skip` generator: interface, cached-reference equivalence, the reference pixels reach the output."""

from __future__ import annotations

import torch

from apb2face.models.config import ModelConfig
from apb2face.models.registry import GENERATORS, build_generator
from apb2face.models.skip_generator import SkipGenerator


def _inputs(size: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1, torch.randn(batch, 256, generator=g)


def test_registered_and_built_by_name():
    assert GENERATORS["skip"] is SkipGenerator
    assert isinstance(build_generator(ModelConfig(image_size=64, generator="skip")), SkipGenerator)


def test_shapes_range_and_cached_reference_equivalence():
    gen = SkipGenerator(ModelConfig(image_size=64, adaconv_init="normal")).eval()
    ref, latent = _inputs(64)
    with torch.no_grad():
        features = gen.encode(ref[:1])
        per_frame = gen.render(features.expand(2, -1, -1, -1), latent)
        whole = gen(ref[:1].expand(2, -1, -1, -1), latent)
    assert features.shape == (1, 64 + 12, 32, 32)  # half-resolution features + space-to-depth reference pixels
    assert per_frame.shape == (2, 3, 64, 64) and per_frame.abs().max() <= 1.0
    torch.testing.assert_close(per_frame, whole, atol=1e-5, rtol=0)
    assert (per_frame[0] - per_frame[1]).abs().mean() > 1e-3  # the latent changes the image


def test_reference_pixels_travel_losslessly_in_the_features():
    gen = SkipGenerator(ModelConfig(image_size=64))
    ref, _ = _inputs(64, batch=1)
    features = gen.encode(ref)
    torch.testing.assert_close(torch.nn.functional.pixel_shuffle(features[:, 64:], 2), ref)
