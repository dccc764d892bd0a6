"""One check for every architecture addition that must warm-start exactly from a checkpoint without it."""

from __future__ import annotations

from pathlib import Path

import torch

from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.modeling import save_pretrained, warm_start


def assert_warm_start_is_exact(directory: Path, before: APB2Face, after_config: ModelConfig) -> None:
    """`before`, saved and warm-started into a model built from `after_config`, renders the same images."""
    save_pretrained(before, directory / "ckpt")
    after = APB2Face(after_config).eval()
    warm_start(after, directory / "ckpt")
    size = after_config.image_size
    args = (torch.rand(2, 3, size, size) * 2 - 1, torch.randn(2, 1, 64, 60), torch.zeros(2, 3), torch.ones(2, 2))
    with torch.no_grad():
        torch.testing.assert_close(after(*args)[0], before.eval()(*args)[0], rtol=0, atol=1e-6)
