"""Config loading: presets, dotted overrides, type coercion, one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from apb2face.cli.main import build_parser, main
from apb2face.config import is_config_path, load, preset_names, read_preset
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


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_validates(name):
    assert set(read_preset(name)) <= {f.name for f in dataclasses.fields(RunConfig)}
    run = load(RunConfig, name)
    assert run.model.image_size > 0 and run.train.steps > 0


def test_a_file_or_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    preset = load(RunConfig, "tiny")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "paper").write_text("model: {image_size: 32}\n")
    assert load(RunConfig, "tiny") == preset
    assert load(RunConfig, "paper").model.image_size == 256  # the preset, not the file of the same name
    assert main(["info", "--config", "tiny", "--json"]) == 0


def test_paths_are_told_from_preset_names_by_their_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yml").write_text("model: {image_size: 64}\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "run").write_text("model: {image_size: 128}\n")
    assert load(RunConfig, "mine.yml").model.image_size == 64
    assert load(RunConfig, "conf/run").model.image_size == 128  # a separator makes it a path, whatever the suffix
    with pytest.raises(UserError, match="config file not found"):
        load(RunConfig, "missing.yaml")
    with pytest.raises(UserError, match="config file not found"):
        load(RunConfig, "./tiny")
    with pytest.raises(UserError, match="unknown config 'tinny' \\(presets: .*tiny.*\\.yaml ending\\)"):
        load(RunConfig, "tinny")
    assert [is_config_path(t) for t in ("tiny", "tiny.yaml", "a/tiny", "TINY.YML")] == [False, True, True, True]


def test_every_command_taking_overrides_uses_the_key_value_positional_and_the_same_parser():
    """One override style: `key=value` words after the options, applied by apb2face.config.apply_overrides."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    styles = {
        name: [(a.dest, bool(a.option_strings)) for a in sub._actions if a.metavar and "=" in str(a.metavar).lower()]
        for name, sub in commands.items()
    }
    taking = {name: style for name, style in styles.items() if style}
    assert {"train", "info"} <= set(taking)
    assert taking["train"] == taking["info"] == [("overrides", False)]


def test_key_value_words_are_overrides_and_paths_never_are() -> None:
    from apb2face.config import split_overrides

    inputs, overrides = split_overrides(["a.mp4", "size=128", "train.lr=1e-4", "./x=y.mp4", "dir/k=v", "=x"])
    assert inputs == ["a.mp4", "./x=y.mp4", "dir/k=v", "=x"]
    assert overrides == ["size=128", "train.lr=1e-4"]


@pytest.mark.parametrize(
    "cls_path, bad, message",
    [
        ("apb2face.data.synth.dataset:SynthConfig", {"size": 65}, "size must be even"),
        ("apb2face.data.synth.dataset:SynthConfig", {"test_fraction": 1.0}, "test_fraction"),
        ("apb2face.evaluation.evaluate:EvalConfig", {"eval_size": 8}, "eval_size"),
        ("apb2face.evaluation.grid:GridConfig", {"max_frames": 0}, "max_frames"),
        ("apb2face.evaluation.decouple:DecoupleConfig", {"yaw": 120.0}, "yaw"),
        ("apb2face.data.prepare.jobs:PrepareConfig", {"size": 8}, "size"),
        (
            "apb2face.models.config:ModelConfig",
            {"reference_warp": True, "generator": "paper"},
            "reference_warp needs generator .skip. or .mobile.",
        ),
    ],
)
def test_config_dataclasses_validate_themselves(cls_path: str, bad: dict, message: str) -> None:
    """Built from the CLI, a YAML file or Python, a config refuses a bad value by itself, naming the field."""
    import importlib

    from apb2face.config import from_dict

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    cls()  # the defaults are valid
    with pytest.raises(ValueError, match=message):
        cls(**bad)
    with pytest.raises(UserError, match=message):
        from_dict(cls, bad)
