"""The CPU-fast `mobile` generator: interface, caching semantics, trainability, cost versus `paper`."""

from __future__ import annotations

import pytest
import torch

from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.generator import PaperGenerator
from apb2face.models.mobile_generator import MobileGenerator
from apb2face.models.registry import GENERATORS, build_generator


def _inputs(size: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1, torch.randn(batch, 256, generator=g)


# the design study's layout, then the options that make the `realtime` preset faster at 256 px: a 1/8 trunk, the
# sub-pixel head at half resolution, and both; value: (options, channels of the half-resolution cache at 64 px)
VARIANTS = {
    "quarter trunk": ({}, 24 + 48 + 12),
    "eighth trunk": ({"trunk_stride": 8}, 6 + 48 + 12),
    "subpixel head": ({"subpixel_head": True}, 24 + 48 + 12),
    "eighth trunk, subpixel head": ({"trunk_stride": 8, "subpixel_head": True}, 6 + 48 + 12),
    "reference warp": ({"reference_warp": True}, 24 + 48 + 12),
    "eighth trunk, subpixel head, reference warp": (
        {"trunk_stride": 8, "subpixel_head": True, "reference_warp": True},
        6 + 48 + 12,
    ),
}


def test_registered_and_built_by_name():
    assert GENERATORS["mobile"] is MobileGenerator
    assert isinstance(build_generator(ModelConfig(image_size=64, generator="mobile")), MobileGenerator)


def _trained_looking(gen: MobileGenerator) -> MobileGenerator:
    """The zero-initialised layers (block outputs, head) moved off zero, so every path shows in the output."""
    with torch.no_grad():
        for block in gen.blocks:
            block.body[-1].weight.normal_(0, 0.05)
        gen.head.weight.normal_(0, 0.05)
        if gen.flow is not None:
            gen.flow.weight.normal_(0, 0.05)
    return gen


@pytest.mark.parametrize("options, cached_channels", VARIANTS.values(), ids=VARIANTS.keys())
def test_shapes_range_and_cached_encoder_equivalence(options, cached_channels):
    config = ModelConfig(image_size=64, generator="mobile", adaconv_init="normal", **options)
    gen = _trained_looking(MobileGenerator(config)).eval()
    ref, latent = _inputs(64)
    with torch.no_grad():
        out = gen(ref, latent)
        features = gen.encode(ref[:1])
        # batch-1 reference features broadcast over a batch of latents (the per-frame path of inference)
        per_frame = gen.render(features, latent)
        alone = gen(ref[:1].expand(2, -1, -1, -1), latent)
    assert out.shape == ref.shape
    assert out.abs().max() <= 1.0
    # one half-resolution tensor: packed trunk features (96 @ 16x16 -> 24, or 96 @ 8x8 -> 6), the skip features'
    # share of the half-resolution merge (48), the pixels (12)
    assert features.shape == (1, cached_channels, 32, 32)
    torch.testing.assert_close(per_frame, alone, atol=3e-5, rtol=0)
    # the latent matters: two different latents give two different images
    assert (per_frame[0] - per_frame[1]).abs().mean() > 1e-3


@pytest.mark.parametrize("options", [v[0] for v in VARIANTS.values()], ids=VARIANTS.keys())
def test_train_and_eval_modes_agree(options):
    # no BatchNorm or running statistics anywhere: what is trained at batch 2 is what runs at batch 1
    gen = MobileGenerator(ModelConfig(image_size=64, generator="mobile", adaconv_init="normal", **options))
    ref, latent = _inputs(64)
    with torch.no_grad():
        train_out = gen.train()(ref, latent)
        eval_out = gen.eval()(ref, latent)
        single = gen(ref[:1], latent[:1])
    torch.testing.assert_close(train_out, eval_out)
    torch.testing.assert_close(single, eval_out[:1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [v[0] for v in VARIANTS.values()], ids=VARIANTS.keys())
def test_every_parameter_learns_in_the_full_model(options):
    config = ModelConfig(image_size=64, generator="mobile", adaconv_init="normal", geometry_sketch=True, **options)
    model = APB2Face(config)
    ref, _ = _inputs(64)
    g = torch.Generator().manual_seed(1)
    audio, pose, eyes = torch.randn(2, 1, 64, 60, generator=g), torch.randn(2, 3, generator=g), torch.rand(2, 2)
    target = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # the head and the last conv of each residual block start at zero: step 1 moves the head, step 2 the blocks'
    # last convs, from step 3 on every layer gets a gradient
    for _ in range(3):
        opt.zero_grad()
        image, landmarks = model(ref, audio, pose, eyes)
        ((image - target).abs().mean() + landmarks.mean()).backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not (p.grad.abs().sum() > 0)]
    assert not dead


@pytest.mark.parametrize("options", [v[0] for v in VARIANTS.values()], ids=VARIANTS.keys())
def test_the_untrained_generator_returns_the_reference(options):
    # the head predicts a change of the reference's pixels and starts at zero: whatever the latent, the untrained
    # generator copies the reference (clamped to +-PIXEL_LIMIT), the starting point training improves on
    from apb2face.models.mobile_generator import PIXEL_LIMIT

    gen = MobileGenerator(ModelConfig(image_size=64, generator="mobile", adaconv_init="normal", **options)).eval()
    ref, latent = _inputs(64)
    with torch.no_grad():
        out = gen(ref[:1].expand(2, -1, -1, -1), latent)
    torch.testing.assert_close(out, ref[:1].clamp(-PIXEL_LIMIT, PIXEL_LIMIT).expand(2, -1, -1, -1), atol=1e-5, rtol=0)


def test_the_speed_options_are_checked():
    with pytest.raises(ValueError, match="trunk_stride must be 4 or 8"):
        ModelConfig(generator="mobile", trunk_stride=16)
    with pytest.raises(ValueError, match="need generator 'mobile'"):
        ModelConfig(generator="skip", subpixel_head=True)
    with pytest.raises(ValueError, match="need generator 'mobile'"):
        ModelConfig(generator="paper", trunk_stride=8)
    with pytest.raises(ValueError, match="subpixel_head must be true or false"):
        ModelConfig(generator="mobile", subpixel_head="yes")
    with pytest.raises(ValueError, match="must divide by 16"):
        MobileGenerator(ModelConfig(generator="mobile", trunk_stride=8, generator_width=0.25))
    with pytest.raises(ValueError, match="need generator 'mobile'"):
        ModelConfig(generator="skip", decoder_width=0.5)
    with pytest.raises(ValueError, match=r"decoder_width must be in \[0.1, 4\]"):
        ModelConfig(generator="mobile", decoder_width=0.05)
    with pytest.raises(ValueError, match="decoder_width must be a number or null"):
        ModelConfig(generator="mobile", decoder_width="half")


def test_the_decoder_width_narrows_only_the_decoder():
    wide = MobileGenerator(ModelConfig(image_size=64, generator="mobile", subpixel_head=True, trunk_stride=8))
    narrow = MobileGenerator(
        ModelConfig(image_size=64, generator="mobile", subpixel_head=True, trunk_stride=8, decoder_width=0.33)
    )
    assert (wide.half_channels, narrow.half_channels) == (48, 16)
    assert narrow.trunk_channels == wide.trunk_channels and narrow.skip_channels == wide.skip_channels
    assert narrow.head.in_channels == 16
    ref, latent = _inputs(64)
    with torch.no_grad():
        assert narrow(ref, latent).shape == ref.shape


def test_fewer_parameters_than_paper():
    config = ModelConfig(image_size=256)
    paper = sum(p.numel() for p in PaperGenerator(config).parameters())
    mobile = sum(p.numel() for p in MobileGenerator(config).parameters())
    assert mobile < 0.5 * paper


def test_at_least_six_times_fewer_macs_than_paper_at_256():
    from apb2face.models.profile import count_macs

    config = ModelConfig(image_size=256)
    ref, latent = _inputs(256, batch=1)
    costs = {}
    for name, cls in (("paper", PaperGenerator), ("mobile", MobileGenerator)):
        gen = cls(config).eval()
        with torch.no_grad():
            features = gen.encode(ref)
        total = sum(count_macs(gen, ref, latent).values())
        per_frame = sum(count_macs(_Render(gen), features, latent).values())
        costs[name] = (total, per_frame)
    assert costs["paper"][0] / costs["mobile"][0] >= 6.0  # reference encoded every frame (7.5x)
    assert costs["paper"][1] / costs["mobile"][1] >= 10.0  # reference encoder cached, as inference runs (10.9x)
    assert costs["mobile"][1] < 0.85e9


class _Render(torch.nn.Module):
    def __init__(self, gen: torch.nn.Module) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.gen.render(features, latent)


def test_cached_features_pack_the_trunk_exactly():
    import torch.nn.functional as F

    gen = MobileGenerator(ModelConfig(image_size=64)).eval()
    ref, _ = _inputs(64, batch=1)
    with torch.no_grad():
        features = gen.encode(ref)
        half = gen.stem_half(ref)
        trunk = gen.norms[0](gen.blocks[0](gen.stem_quarter(half)))
    torch.testing.assert_close(F.pixel_unshuffle(features[:, :24], 2), trunk, rtol=0, atol=0)
    torch.testing.assert_close(F.pixel_shuffle(features[:, 24 + 48 :], 2), ref, rtol=0, atol=0)


def test_the_per_frame_rewrites_compute_the_trained_layers():
    # the cached skip share plus the per-frame convs equal merge_half on the concatenation it was defined on, and
    # the flow's taps summed equal its 3x3 convolution

    config = ModelConfig(
        image_size=64, generator="mobile", geometry_sketch=True, reference_warp=True, subpixel_head=True
    )
    gen = _trained_looking(MobileGenerator(config)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (gen.merge_half[0], gen.flow):
            layer.bias.normal_(0, 0.1, generator=g)
    x, skip, sketch = (torch.randn(2, c, 32, 32, generator=g) for c in (48, 32, 4))
    with torch.no_grad():
        torch.testing.assert_close(
            gen._merged_half(x, gen._skip_share(skip[:1]), sketch),
            gen.merge_half(torch.cat([x, skip[:1].expand(2, -1, -1, -1), sketch], dim=1)),
            atol=1e-5,
            rtol=0,
        )
        torch.testing.assert_close(gen._flow(x), gen.flow(x), atol=1e-5, rtol=0)
        assert gen.flow(x).abs().mean() > 0.1  # not two zeros


def test_the_realtime_preset_needs_fifteen_times_fewer_macs_than_paper_at_256():
    from apb2face.config import load
    from apb2face.models.profile import model_report
    from apb2face.training.config import RunConfig

    gmac = {
        name: model_report(load(RunConfig, name, ["model.image_size=256"]).model, discriminator=False)["inference"][
            "gmac"
        ]
        for name in ("paper", "realtime")
    }
    # fuser included, the reference encoded every frame (with it cached, as inference runs, the ratio is higher):
    # 10.00 vs 0.58 GMAC; the target is 12x
    assert gmac["paper"] / gmac["realtime"] >= 15.0


@pytest.mark.parametrize("subpixel_head", [False, True])
def test_the_warp_moves_the_reference_before_the_head_changes_it(subpixel_head):
    # a constant flow of +1/8 of the crop's half-width in x samples each pixel from 4 px to its right at 64 px: the
    # untrained head (zero change) then returns the reference shifted left
    from apb2face.models.reference_warp import FLOW_LIMIT

    config = ModelConfig(image_size=64, generator="mobile", reference_warp=True, subpixel_head=subpixel_head)
    gen = MobileGenerator(config).eval()
    shift = 4 / 32  # grid units: 2 = the crop's side
    with torch.no_grad():
        gen.flow.bias[0] = torch.atanh(torch.tensor(shift / FLOW_LIMIT))
    ref = torch.linspace(-0.9, 0.9, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    with torch.no_grad():
        out = gen(ref, torch.randn(1, 256))
    torch.testing.assert_close(out[..., :-4], ref[..., 4:], atol=1e-4, rtol=0)


def test_a_mobile_checkpoint_without_the_warp_warm_starts_one_with_it_exactly(tmp_path):
    import dataclasses

    from .warm_start_check import assert_warm_start_is_exact

    plain = ModelConfig(
        image_size=64,
        generator="mobile",
        trunk_stride=8,
        subpixel_head=True,
        geometry_sketch=True,
        adaconv_init="normal",
    )
    torch.manual_seed(0)
    model = APB2Face(plain)
    _trained_looking(model.generator)
    assert_warm_start_is_exact(tmp_path, model, dataclasses.replace(plain, reference_warp=True))


def test_the_mac_count_includes_convolutions_run_as_functions():
    # the flow's taps, the per-frame merge and the cached skip share run the layers' weights through F.conv2d: they
    # are counted (in a row of their own) and the rows add up to the generator's total
    from apb2face.models.profile import model_report

    config = ModelConfig(
        image_size=256,
        generator="mobile",
        generator_width=0.67,
        decoder_width=0.33,
        trunk_stride=8,
        subpixel_head=True,
        reference_warp=True,
        geometry_sketch=True,
    )
    generator = model_report(config, discriminator=False)["modules"][1]
    rows = {row["name"]: row["gmac"] for row in generator["children"]}
    # at 256 px: the flow's taps 128^2 x 16 x 18, the merge 128^2 x (16 + 4) x 16, the skip share 128^2 x 24 x 16
    assert rows["functional convolutions"] == pytest.approx(128 * 128 * (16 * 18 + 20 * 16 + 24 * 16) / 1e9, abs=2e-4)
    assert sum(rows.values()) == pytest.approx(generator["gmac"], abs=1e-3)
