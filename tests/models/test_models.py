"""Model shapes, parameter counts against the official network, AdaConv semantics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.models.apb2face import APB2Face
from apb2face.models.blocks import AdaConv
from apb2face.models.config import GEOMETRY_POINTS, ModelConfig
from apb2face.models.discriminator import PatchDiscriminator
from apb2face.models.registry import GENERATORS, build_generator
from apb2face.training.config import RunConfig


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(config: ModelConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    s = config.image_size
    return (
        torch.rand(batch, 3, s, s, generator=g) * 2 - 1,
        torch.randn(batch, 1, config.audio_window, 60, generator=g),
        torch.randn(batch, 3, generator=g) * 15,
        torch.rand(batch, 2, generator=g),
    )


def test_geometry_points_are_106_unique_mesh_indices():
    assert len(GEOMETRY_POINTS) == 106
    assert len(set(GEOMETRY_POINTS)) == 106
    assert all(0 <= i < 468 for i in GEOMETRY_POINTS)


def test_paper_parameter_counts_match_official_network():
    config = load(RunConfig, "paper").model
    model = APB2Face(config)
    g = n_params(model.generator)
    assert abs(g - 4_085_200) <= 0.01 * 4_085_200
    assert g == 4_085_200  # the decoded topology is exact, not just within 1%
    assert n_params(model.generator.adaconvs) == 1_875_072
    assert n_params(model.generator.stem) == 43_848
    assert n_params(model.fuser) == 1_864_495  # 106 landmarks -> 212 outputs, as upstream
    assert n_params(PatchDiscriminator(config)) == 2_766_913


def test_tiny_forward_shapes_and_ranges():
    config = load(RunConfig, "tiny").model
    model = APB2Face(config).eval()
    ref, audio, pose, eyes = inputs(config)
    with torch.no_grad():
        image, landmarks = model(ref, audio, pose, eyes)
        latent, lm2 = model.fuse(audio, pose, eyes)
        logits = PatchDiscriminator(config)(ref, image)
    assert image.shape == ref.shape
    assert image.abs().max() <= 1.0
    assert landmarks.shape == (2, len(GEOMETRY_POINTS), 2)
    assert 0.0 <= landmarks.min() and landmarks.max() <= 1.0
    assert latent.shape == (2, 256)
    # per-sample standardised latent (upstream norm_1d)
    torch.testing.assert_close(latent.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(latent.var(1, unbiased=False), torch.ones(2), atol=2e-2, rtol=0)  # eps 1e-5
    assert logits.shape[:2] == (2, 1) and logits.shape[2] > 1


@pytest.mark.parametrize("size", [64, 128])
def test_cached_reference_path_equals_forward(size):
    config = ModelConfig(image_size=size, generator_width=0.25)
    model = APB2Face(config).eval()
    for p in model.parameters():  # make the AdaConvs non-trivial
        torch.nn.init.normal_(p, 0, 0.05)
    ref, audio, pose, eyes = inputs(config, batch=3)
    with torch.no_grad():
        image, _ = model(ref[:1].expand(3, -1, -1, -1), audio, pose, eyes)
        features = model.encode_reference(ref[:1])
        latent, _ = model.fuse(audio, pose, eyes)
        cached = model.render(features, latent)
    torch.testing.assert_close(cached, image, atol=1e-5, rtol=0)


def test_adaconv_identity_at_init():
    ada = AdaConv(24, 256, "identity")
    ada.reset_parameters()
    x = torch.randn(3, 24, 8, 8)
    z = torch.randn(3, 256)
    torch.testing.assert_close(ada(x, z), x)


def test_generator_is_latent_independent_at_init_and_not_after_training_signal():
    config = load(RunConfig, "tiny").model
    model = APB2Face(config).eval()
    ref, audio, pose, eyes = inputs(config)
    with torch.no_grad():
        f = model.encode_reference(ref)
        a = model.render(f, torch.randn(2, 256))
        b = model.render(f, torch.randn(2, 256))
    torch.testing.assert_close(a, b)  # identity AdaConvs: latent has no effect yet
    loss = model(ref, audio, pose, eyes)[0].mean()
    loss.backward()
    last = model.generator.adaconvs[0].weight[-1].weight
    assert last.grad is not None and last.grad.abs().sum() > 0  # but it receives gradient


def test_adaconv_vectorised_equals_per_sample_loop():
    ada = AdaConv(16, 256, "normal")
    ada.reset_parameters()
    torch.nn.init.normal_(ada.weight[-1].weight, 0, 0.1)
    x = torch.randn(4, 16, 6, 6)
    z = torch.randn(4, 256)
    scale, shift = ada.scale_shift(z)
    # upstream: one grouped 1x1 conv per sample with a predicted (C,1,1,1) kernel and (C,) bias
    loop = torch.cat([F.conv2d(x[i : i + 1], scale[i].view(16, 1, 1, 1), shift[i], groups=16) for i in range(4)])
    torch.testing.assert_close(ada(x, z), loop, atol=1e-6, rtol=1e-5)


def test_normal_init_is_not_identity():
    ada = AdaConv(16, 256, "normal")
    ada.reset_parameters()
    x = torch.randn(2, 16, 4, 4)
    assert (ada(x, torch.randn(2, 256)) - x).abs().mean() > 0.1


def test_fuser_normalises_audio_with_saved_stats():
    config = load(RunConfig, "tiny").model
    model = APB2Face(config).eval()
    _, audio, pose, eyes = inputs(config)
    with torch.no_grad():
        base, _ = model.fuse(audio, pose, eyes)
        model.fuser.set_audio_stats(torch.full((60,), 3.0), torch.full((60,), 2.0))
        shifted, _ = model.fuse(audio * 2 + 3, pose, eyes)
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)
    assert "fuser.audio_mean" in model.state_dict() and "fuser.audio_std" in model.state_dict()


def test_rows_encoded_once_give_the_fuser_of_whole_windows():
    # inference encodes each 10 ms audio row once (normalisation + the feature-axis convs, which never mix rows) and
    # slides windows over the encoded rows; training runs the fuser on whole windows: the same function
    config = ModelConfig(adaconv_init="normal")
    model = APB2Face(config).eval()
    g = torch.Generator().manual_seed(3)
    model.fuser.set_audio_stats(torch.randn(60, generator=g), torch.rand(60, generator=g) + 0.5)
    track = torch.randn(120, 60, generator=g) * 5
    starts = torch.tensor([0, 4, 8, 56])
    windows = track[starts[:, None] + torch.arange(config.audio_window)]
    pose, eyes = torch.randn(4, 3, generator=g), torch.rand(4, 2, generator=g)
    with torch.no_grad():
        latent, landmarks = model.fuse(windows[:, None], pose, eyes)
        rows = model.encode_audio_rows(track)
        latent_rows, landmarks_rows = model.fuse_rows(
            rows[starts[:, None] + torch.arange(config.audio_window)], pose, eyes
        )
        # a row's encoding does not depend on the other rows of its batch
        alone = model.encode_audio_rows(track[10:26])
    assert rows.shape == (120, 512)
    torch.testing.assert_close(latent_rows, latent, atol=1e-5, rtol=0)
    torch.testing.assert_close(landmarks_rows, landmarks, atol=1e-6, rtol=0)
    torch.testing.assert_close(alone, rows[10:26], atol=1e-5, rtol=0)


def test_unknown_generator_is_user_error():
    with pytest.raises(UserError, match="unknown generator"):
        build_generator(ModelConfig(generator="nope"))
    assert "paper" in GENERATORS


@pytest.mark.parametrize(
    "bad",
    [
        "model.image_size=100",
        "model.audio_window=50",
        "model.adaconv_init=zero",
        "train.lr=0",
        "model.nope=1",
        "model.latent_dim=1000000",
        "model.audio_window=1600000",
        "model.discriminator_width=4",
        "train.betas=[0.5]",
        "train.seed=-1",
        "train.device=gpu",
        "train.lambda_l1=-1",
    ],
)
def test_invalid_config_is_user_error_naming_the_field(bad):
    with pytest.raises(UserError, match=bad.split("=")[0].split(".")[-1]):
        load(RunConfig, "tiny", [bad])


@pytest.mark.parametrize("name", ["paper", "default", "tiny"])
def test_presets_load(name):
    run = load(RunConfig, name)
    assert run.model.image_size in (64, 128, 256)
    assert run.model.generator in GENERATORS
