"""Release checkpoints: a directory that fully describes a trained APB2Face model.

    CKPT/
      config.json           {"format", "version", "model": ModelConfig, "preprocessing": {...}, "identities",
                             "meta": free-form facts from training (dataset, steps, fps, ...)}
      model.safetensors     fuser.* and generator.* weights (incl. the fuser's audio normalisation buffers)
      identities/<name>.png one RGB reference face crop per identity trained on (model image size)
      README.md             optional model card

Written atomically (a temporary directory renamed into place). Every load problem is a UserError naming the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from apb2face.config import from_dict
from apb2face.errors import UserError
from apb2face.io import atomic_dir, read_json, write_json
from apb2face.models.apb2face import APB2Face
from apb2face.models.config import GEOMETRY_POINTS, GEOMETRY_SCHEME, POSE_SCALE_DEGREES, ModelConfig

CHECKPOINT_FORMAT = "apb2face-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
IDENTITIES_DIR = "identities"
README_FILE = "README.md"


@dataclass
class Pretrained:
    model: APB2Face
    config: ModelConfig
    references: dict[str, np.ndarray]  # identity name -> (S, S, 3) uint8 RGB
    meta: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)


def preprocessing_facts(config: ModelConfig) -> dict[str, Any]:
    """What a user of the checkpoint must do to its inputs (stored in config.json for tools and people)."""
    from apb2face.data import audio
    from apb2face.data.format import EYES_CONVENTION, POSE_CONVENTION

    return {
        "audio_sample_rate": audio.SAMPLE_RATE,
        "audio_feature_rate": audio.FEATURE_RATE,
        "audio_features": "apb2face.data.audio.audio_features: 20 MFCC + temporal delta + delta-delta (60)",
        "audio_window": config.audio_window,
        "audio_lookahead": config.audio_lookahead,
        "image_size": config.image_size,
        "image_range": [-1.0, 1.0],
        "crop": "apb2face.data.face.crop_box_from_landmarks (mediapipe-478 face mesh)",
        "landmark_scheme": GEOMETRY_SCHEME,
        "geometry_points": list(GEOMETRY_POINTS),
        "pose_convention": POSE_CONVENTION,
        "pose_input_scale_degrees": POSE_SCALE_DEGREES,
        "eyes_convention": EYES_CONVENTION,
    }


def save_pretrained(
    model: APB2Face,
    directory: str | Path,
    references: dict[str, np.ndarray] | None = None,
    extra: dict[str, Any] | None = None,
    readme: str | None = None,
) -> Path:
    """Write a release checkpoint to `directory` (replacing one already there, atomically)."""
    from safetensors.torch import save_file

    references = references or {}
    config = model.config
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / IDENTITIES_DIR).mkdir()
        for name, image in sorted(references.items()):
            _check_reference(name, image, config.image_size)
            if not cv2.imwrite(str(tmp / IDENTITIES_DIR / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write identity image {name!r}")
        write_json(
            tmp / CONFIG_FILE,
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "model": dataclasses.asdict(config),
                "preprocessing": preprocessing_facts(config),
                "identities": sorted(references),
                "meta": extra or {},
            },
        )
        if readme is not None:
            (tmp / README_FILE).write_text(readme)
    return directory


def load_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig and the raw config.json of a checkpoint directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(
            "checkpoint not found (expected a directory with config.json and model.safetensors)", directory
        )
    path = directory / CONFIG_FILE
    raw = read_json(path)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise UserError("not an apb2face checkpoint config", path)
    if raw.get("version") != CHECKPOINT_VERSION:
        raise UserError(
            f"checkpoint version {raw.get('version')} is not supported (expected {CHECKPOINT_VERSION})", path
        )
    try:
        config = from_dict(ModelConfig, raw.get("model") or {}, prefix="model.")
    except UserError as exc:
        raise UserError(str(exc), path) from None
    return config, raw


def load_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Load a release checkpoint written by `save_pretrained`; the model is in eval mode on `device`."""
    directory = Path(directory)
    config, raw = load_config(directory)
    weights, state = _read_weights(directory)
    model = APB2Face(config)
    _load_state(model, state, weights)
    references = load_references(directory, raw)
    model.to(device).eval()
    return Pretrained(
        model=model,
        config=config,
        references=references,
        meta=raw.get("meta", {}),
        preprocessing=raw.get("preprocessing", {}),
    )


def warm_start(model: APB2Face, directory: str | Path) -> None:
    """Copy a release checkpoint's weights into `model`, whose architecture may add input channels.

    Tensors of equal shape are copied. A conv weight the new model widens along its input channels (dim 1, new
    channels appended last, as the sketch's are) gets the old weights in its first channels and zeros in the rest;
    a tensor the checkpoint lacks is accepted only if the new model initialises it to zero (a new branch that starts
    as a no-op, e.g. the mobile sketch's trunk 1x1). So the warm-started model computes exactly what the checkpoint
    did. Anything else is a one-line error."""
    directory = Path(directory)
    load_config(directory)
    weights, state = _read_weights(directory)
    target = model.state_dict()
    missing = sorted(key for key in set(target) - set(state) if target[key].any())
    if missing:
        raise UserError(f"cannot warm-start: {len(missing)} weights missing (e.g. {missing[0]})", weights)
    merged = {}
    for key, new in target.items():
        old = state.get(key, new)
        if old.shape == new.shape:
            merged[key] = old
        elif (
            old.dim() == 4
            and old.shape[0] == new.shape[0]
            and old.shape[2:] == new.shape[2:]
            and old.shape[1] < new.shape[1]
        ):
            widened = torch.zeros_like(new)
            widened[:, : old.shape[1]] = old
            merged[key] = widened
        else:
            raise UserError(
                f"cannot warm-start: {key} has shape {tuple(old.shape)}, the model needs {tuple(new.shape)}", weights
            )
    model.load_state_dict(merged, strict=True)


def load_references(directory: str | Path, raw: dict[str, Any]) -> dict[str, np.ndarray]:
    """The identity crops listed in a checkpoint's config.json (`raw`), name -> (S, S, 3) uint8 RGB."""
    references = {}
    for name in raw.get("identities", []):
        path = Path(directory) / IDENTITIES_DIR / f"{name}.png"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("missing or unreadable identity image", path)
        references[name] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return references


def _read_weights(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """The checkpoint's weights file and its tensors; a missing or corrupt file is a one-line UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError("file not found", weights)
    try:
        return weights, load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"corrupt weights file ({str(exc).splitlines()[0][:160]})", weights) from None


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Strict load with a one-line explanation of the first mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
        raise UserError(f"weights do not match the config's model: {', '.join(parts)}", path)
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise UserError(
                f"weights do not match the config's model: {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}",
                path,
            )
    model.load_state_dict(state, strict=True)


def _check_reference(name: str, image: np.ndarray, size: int) -> None:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid identity name {name!r}")
    if image.dtype != np.uint8 or image.shape != (size, size, 3):
        raise ValueError(
            f"identity {name!r}: expected a ({size}, {size}, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
