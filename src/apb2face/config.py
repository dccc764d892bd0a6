"""Dataclass configs: defaults in code, presets in YAML, `key=value` overrides on the command line.

A preset is named (`paper`, `tiny`, ... = src/apb2face/configs/<name>.yaml) or a path to a YAML file, told apart by
the text alone (`is_config_path`), never by what happens to exist in the working directory. Unknown keys and values of
the wrong type are errors that name the key. Nested dataclasses are addressed with dots
(`train.lr=1e-4`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from apb2face.errors import UserError

T = TypeVar("T")


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("apb2face.configs").iterdir() if p.name.endswith(".yaml"))


def is_config_path(name_or_path: str | Path) -> bool:
    """A path has a directory separator or ends in .yaml/.yml; anything else names a preset. Decided without looking
    at the disk, so a file or folder called `tiny` in the working directory cannot hide the `tiny` preset."""
    text = str(name_or_path)
    return "/" in text or os.sep in text or text.lower().endswith((".yaml", ".yml"))


OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")


def is_override(token: str) -> bool:
    """`key=value` with a dotted identifier as key: the one override spelling of every command. A path is never one
    (a key has no separator), so a file named like `a=b.mp4` is passed as `./a=b.mp4`."""
    return OVERRIDE.match(token) is not None


def split_overrides(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Positional words of a command that also takes inputs: (inputs, key=value overrides), order kept."""
    return [t for t in tokens if not is_override(t)], [t for t in tokens if is_override(t)]


def read_preset(name_or_path: str | Path) -> dict:
    """The raw mapping of a preset name or a YAML file path (see `is_config_path`)."""
    if is_config_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError("config file not found", path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config file ({exc.__class__.__name__})", path) from None
    else:
        if name_or_path not in preset_names():
            raise UserError(
                f"unknown config {name_or_path!r} (presets: {', '.join(preset_names())}; a file path needs a / or "
                "a .yaml ending)"
            )
        res = resources.files("apb2face.configs").joinpath(f"{name_or_path}.yaml")
        text = res.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML ({str(exc).splitlines()[0]})", name_or_path) from None
    if not isinstance(data, dict):
        raise UserError("config must be a mapping of keys to values", name_or_path)
    return data


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass `cls` from a (nested) mapping, checking keys and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(f"unknown config key {prefix + key!r} (known: {', '.join(sorted(fields))})")
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid config{' ' + prefix.rstrip('.') if prefix else ''}: {exc}") from None


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b=value` strings (values parsed as YAML scalars) to a nested mapping, returning a new mapping."""
    out = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {key!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load(cls: type[T], name_or_path: str | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of `cls`, then the preset/file, then the overrides."""
    data = read_preset(name_or_path) if name_or_path else {}
    return from_dict(cls, apply_overrides(data, overrides or []))


def _deep_copy(d: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} must be a section (mapping)")
        return from_dict(hint, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key) if len(args) == 1 else value
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise UserError(f"config key {key!r} must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key!r} must be a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        seq = [_coerce(item, v, key) for v in value] if item is not Any and item is not Ellipsis else list(value)
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} must be a mapping")
        return dict(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads `5e-5` (no dot) as a string; a float field takes any number Python reads
        try:
            return float(value)
        except ValueError:
            raise UserError(f"config key {key!r} must be a number, got {value!r}") from None
    if hint in (int, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise UserError(f"config key {key!r} must be {hint.__name__}, got {value!r}")
    return value
