"""The geometry sketch: contours land where the landmarks are, the mouth channel opens with the mouth, and a sketch
generator uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from apb2face.models.apb2face import APB2Face
from apb2face.models.config import GEOMETRY_GROUPS, GEOMETRY_POINTS, ModelConfig
from apb2face.models.sketch import SKETCH_CHANNELS, geometry_sketch

from .warm_start_check import assert_warm_start_is_exact


def _face(mouth_open: float) -> torch.Tensor:
    """A (1, K, 2) landmark set: every group a small ellipse; the inner lips an ellipse of height `mouth_open`."""
    centres = {
        "face_oval": (0.5, 0.5, 0.35, 0.45),
        "lips_outer": (0.5, 0.72, 0.12, 0.06),
        "lips_inner": (0.5, 0.72, 0.09, mouth_open / 2),
        "right_eye": (0.35, 0.4, 0.06, 0.02),
        "left_eye": (0.65, 0.4, 0.06, 0.02),
        "right_brow": (0.35, 0.32, 0.08, 0.01),
        "left_brow": (0.65, 0.32, 0.08, 0.01),
        "nose": (0.5, 0.55, 0.04, 0.04),
    }
    points = []
    for name, group in GEOMETRY_GROUPS.items():
        cx, cy, rx, ry = centres[name]
        angles = np.linspace(0, 2 * np.pi, len(group), endpoint=False)
        points += [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]
    assert len(points) == len(GEOMETRY_POINTS)
    return torch.tensor([points], dtype=torch.float32)


def _dense_sketch(landmarks: torch.Tensor, size: int, sigma: float = 0.75) -> torch.Tensor:
    """The sketch by definition: every segment's ink evaluated at every pixel, max per channel."""
    from apb2face.models.sketch import _SEG_A, _SEG_B, _SEG_CHANNEL

    p, q = landmarks[:, _SEG_A] * size - 0.5, landmarks[:, _SEG_B] * size - 0.5
    coords = torch.arange(size, dtype=landmarks.dtype)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)
    d, rel = (q - p)[:, :, None], grid[None, None] - p[:, :, None]
    t = ((rel * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-6)).clamp(0.0, 1.0)
    ink = torch.exp(-((rel - t[..., None] * d) ** 2).sum(-1) / (2.0 * sigma * sigma))
    channels = [ink[:, _SEG_CHANNEL == c].amax(dim=1) for c in range(SKETCH_CHANNELS)]
    return torch.stack(channels, dim=1).view(landmarks.shape[0], SKETCH_CHANNELS, size, size)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_the_windowed_sketch_equals_the_definition(size):
    torch.manual_seed(size)
    faces = torch.cat([_face(0.0), _face(0.12), _face(0.05) * 1.3 - 0.15])  # the last one crosses the image edge
    faces = faces + torch.randn_like(faces) * 0.01
    torch.testing.assert_close(geometry_sketch(faces, size), _dense_sketch(faces, size), rtol=0, atol=1e-5)


def test_low_precision_landmarks_are_drawn_in_float32():
    # under CUDA autocast the fuser's landmarks arrive in bf16, which cannot hold pixel coordinates or indices > 256
    faces = _face(0.08).bfloat16()
    sketch = geometry_sketch(faces, 256)
    assert sketch.dtype == torch.float32
    torch.testing.assert_close(sketch, geometry_sketch(faces.float(), 256), rtol=0, atol=0)


def test_large_feature_maps_get_the_sketch_drawn_at_the_cap_and_upsampled():
    from apb2face.models.sketch import sketch_for

    faces = _face(0.08)
    small, large = torch.zeros(1, 8, 64, 64), torch.zeros(1, 8, 128, 128)
    # up to the cap (and without one) the sketch is drawn at the features' own resolution
    torch.testing.assert_close(sketch_for(faces, small, 64), geometry_sketch(faces, 64), rtol=0, atol=0)
    torch.testing.assert_close(sketch_for(faces, large), geometry_sketch(faces, 128), rtol=0, atol=0)
    upsampled = sketch_for(faces, large, 64)
    assert upsampled.shape == (1, SKETCH_CHANNELS, 128, 128)

    # the same contours where the full-resolution drawing puts them: softer, not moved (ink centroids within 0.6 px,
    # 0.3 px of the 64 px drawing: its sampling of a 0.75 px line)
    def centroids(image: torch.Tensor) -> torch.Tensor:
        coords = torch.arange(image.shape[-1], dtype=torch.float32)
        x, y = (image[0].sum(dim=1) * coords).sum(-1), (image[0].sum(dim=2) * coords).sum(-1)
        return torch.stack([x, y], dim=-1) / image[0].sum(dim=(1, 2))[:, None]

    sharp = geometry_sketch(faces, 128)
    assert float((centroids(upsampled) - centroids(sharp)).abs().max()) < 0.6
    assert float((upsampled * sharp).sum() / (sharp * sharp).sum()) > 0.5


def test_the_cap_is_part_of_the_model_config():
    # a checkpoint without the field keeps drawing at full size; the `realtime` preset caps it at 64 px
    from apb2face.config import load
    from apb2face.training.config import RunConfig

    assert ModelConfig().sketch_max_size is None
    assert load(RunConfig, "realtime", []).model.sketch_max_size == 64
    with pytest.raises(ValueError, match=r"sketch_max_size must be in \[16, 256\]"):
        ModelConfig(sketch_max_size=8)
    with pytest.raises(ValueError, match="sketch_max_size must be an integer or null"):
        ModelConfig(sketch_max_size=64.0)


def test_a_segment_is_drawn_where_it_is():
    sketch = geometry_sketch(_face(0.0), 64)
    assert sketch.shape == (1, SKETCH_CHANNELS, 64, 64)
    assert float(sketch.min()) >= 0.0 and float(sketch.max()) <= 1.0
    lips = sketch[0, 2]  # outer lips: centre (0.5, 0.72) -> pixel (31.5, 45.6), half-width 7.7 px
    assert float(lips[46, 24]) > 0.3  # on the contour's left end
    assert float(lips[10, 10]) < 1e-3 and float(lips[46, 32]) < 0.05  # far away, and the mouth's inside


def test_the_inner_lip_channel_opens_with_the_mouth():
    def height(sketch: torch.Tensor) -> int:
        rows = (sketch[0, 3] > 0.5).any(dim=1).nonzero().flatten()
        return int(rows.max() - rows.min() + 1)

    closed, open_ = geometry_sketch(_face(0.0), 64), geometry_sketch(_face(0.12), 64)
    assert height(open_) >= height(closed) + 5  # 0.12 of 64 px = 7.7 px taller
    torch.testing.assert_close(closed[:, :3], open_[:, :3])  # the other channels do not change


def test_only_the_skip_and_mobile_generators_draw_it():
    with pytest.raises(ValueError, match="'skip' or 'mobile'"):
        ModelConfig(image_size=64, generator="paper", geometry_sketch=True)


def _perturb(model: APB2Face) -> APB2Face:
    """Untrained mobile blocks and its sketch input start as no-ops: perturb every generator weight."""
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("generator", ["skip", "mobile"])
def test_the_sketch_steers_the_image_and_teacher_forcing_replaces_the_points(generator):
    config = ModelConfig(image_size=64, generator=generator, geometry_sketch=True, adaconv_init="normal")
    torch.manual_seed(0)
    model = _perturb(APB2Face(config)).eval()
    ref = torch.rand(2, 3, 64, 64) * 2 - 1
    audio, pose, eyes = torch.randn(2, 1, 64, 60), torch.zeros(2, 3), torch.ones(2, 2)
    with torch.no_grad():
        own, landmarks = model(ref, audio, pose, eyes)
        latent, _ = model.fuse(audio, pose, eyes)
        features = model.encode_reference(ref)
        torch.testing.assert_close(own, model.render(features, latent))  # default: the fuser's own landmarks
        closed, wide = _face(0.0).expand(2, -1, -1), _face(0.15).expand(2, -1, -1)
        a = model.render(features, latent, closed)
        b = model.render(features, latent, wide)
        mixed, _ = model(ref, audio, pose, eyes, geometry=wide, teacher=torch.tensor([True, False]))
    assert (a - b).abs().mean() > 1e-3  # same latent, another sketch: another image
    torch.testing.assert_close(mixed[0], b[0])
    torch.testing.assert_close(mixed[1], own[1])


@pytest.mark.parametrize("generator", ["skip", "mobile"])
def test_warm_start_from_a_model_without_the_sketch_is_exact(tmp_path, generator):
    plain = ModelConfig(image_size=64, generator=generator, adaconv_init="normal")
    torch.manual_seed(1)
    before = _perturb(APB2Face(plain))
    assert_warm_start_is_exact(tmp_path, before, dataclasses.replace(plain, geometry_sketch=True))


def test_warm_start_refuses_another_architecture(tmp_path):
    from apb2face.errors import UserError
    from apb2face.models.modeling import save_pretrained, warm_start

    save_pretrained(APB2Face(ModelConfig(image_size=64, generator="skip")), tmp_path / "ckpt")
    with pytest.raises(UserError, match="cannot warm-start"):
        warm_start(APB2Face(ModelConfig(image_size=64, generator="mobile")), tmp_path / "ckpt")


def test_fuser_only_warm_start_takes_the_fuser_into_another_renderer(tmp_path):
    """only="fuser": a `mobile` model starts from a `skip` checkpoint's fuser (weights and audio statistics) and
    keeps its own freshly initialised renderer."""
    from apb2face.models.modeling import save_pretrained, warm_start

    torch.manual_seed(3)
    base = _perturb(APB2Face(ModelConfig(image_size=64, generator="skip")))
    base.fuser.set_audio_stats(np.full(60, 0.5), np.full(60, 2.0))
    save_pretrained(base, tmp_path / "ckpt")
    torch.manual_seed(4)
    model = APB2Face(ModelConfig(image_size=64, generator="mobile"))
    fresh = {key: value.clone() for key, value in model.generator.state_dict().items()}
    warm_start(model, tmp_path / "ckpt", only="fuser")
    for key, value in base.fuser.state_dict().items():
        torch.testing.assert_close(model.fuser.state_dict()[key], value, rtol=0, atol=0)
    for key, value in model.generator.state_dict().items():
        torch.testing.assert_close(value, fresh[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="only must be"):
        warm_start(model, tmp_path / "ckpt", only="generator")


def test_warm_start_refuses_to_drop_a_part_of_the_checkpoint(tmp_path):
    """A checkpoint with the reference warp, warm-started into a model configured without it, would lose the warp
    without a word: refused, naming the option."""
    from apb2face.errors import UserError
    from apb2face.models.modeling import save_pretrained, warm_start

    save_pretrained(APB2Face(ModelConfig(image_size=64, generator="skip", reference_warp=True)), tmp_path / "ckpt")
    with pytest.raises(UserError, match="reference_warp"):
        warm_start(APB2Face(ModelConfig(image_size=64, generator="skip")), tmp_path / "ckpt")
