"""Config loading: presets, dotted overrides, type coercion, one-line errors."""

from __future__ import annotations

import pytest

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.training.config import RunConfig


def test_overrides_are_typed_by_the_dataclass():
    run = load(
        RunConfig,
        "tiny",
        [
            "train.lr=5e-5",
            "train.steps=7",
            "model.geometry_sketch=true",
            "model.generator=skip",
            "train.betas=[0.9, 0.99]",
        ],
    )
    assert run.train.lr == 5e-5 and isinstance(run.train.lr, float)  # YAML 1.1 alone reads "5e-5" as a string
    assert run.train.steps == 7 and run.model.geometry_sketch is True
    assert run.train.betas == (0.9, 0.99)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=fast", "must be a number"),
        ("train.steps=1.5", "must be int"),
        ("train.no_such_key=1", "no_such_key"),
    ],
)
def test_bad_overrides_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        load(RunConfig, "tiny", [override])
