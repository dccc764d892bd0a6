"""The shared blocks: one ResidualBlock and one AdaConv used by every generator, weights of before still load."""

from __future__ import annotations

import pytest
import torch

from apb2face.models import blocks
from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.modeling import load_pretrained


def modules_named(model: torch.nn.Module, name: str) -> list[type]:
    return [type(m) for m in model.modules() if type(m).__name__ == name]


@pytest.mark.parametrize("generator", ["paper", "skip", "mobile"])
def test_every_generator_uses_the_one_adaconv(generator):
    model = APB2Face(ModelConfig(image_size=64, generator=generator, generator_width=0.25))
    found = modules_named(model, "AdaConv")
    assert found and set(found) == {blocks.AdaConv}


@pytest.mark.parametrize("generator", ["paper", "skip"])
def test_residual_cells_are_the_one_residual_block(generator):
    model = APB2Face(ModelConfig(image_size=64, generator=generator, generator_width=0.25))
    found = modules_named(model, "ResidualBlock")
    assert found and set(found) == {blocks.ResidualBlock}
    # the two convs keep the keys checkpoints were written with
    assert {k.rsplit(".", 2)[-2] for k in model.state_dict() if ".blocks." in k or ".cells.1." in k} <= {"0", "3"}


def test_committed_demo_checkpoint_loads_strictly():
    from apb2face.inference.pipeline import default_checkpoint

    demo = default_checkpoint()
    if demo is None:
        pytest.skip("the demo checkpoint is not installed with this package")
    loaded = load_pretrained(demo)  # a strict load: every key and shape of the file matches the model
    assert loaded.config.generator == "skip" and loaded.references
