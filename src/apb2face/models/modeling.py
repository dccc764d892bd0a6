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
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from apb2face.config import from_dict
from apb2face.data.format import check_name
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
        "audio_loudness": config.audio_loudness,  # "relative": c0 through apb2face.data.loudness.LevelTracker
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
    with atomic_dir(directory, owned_names=(WEIGHTS_FILE, CONFIG_FILE, IDENTITIES_DIR, README_FILE)) as tmp:
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
    """The ModelConfig and the raw config.json of a checkpoint directory, checked: a checkpoint is untrusted input,
    so every field of the wrong type or size is a UserError naming config.json."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(
            "checkpoint not found (expected a directory with config.json and model.safetensors)", directory
        )
    path = directory / CONFIG_FILE
    raw = read_json(path)
    try:
        _check_header(raw)
        _check_sections(raw)
        config = from_dict(ModelConfig, raw.get("model") or {}, prefix="model.")
    except (UserError, ValueError) as exc:
        raise UserError(str(exc).removeprefix(f"{path}: "), path) from None
    return config, raw


def _check_header(raw: object) -> None:
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not an apb2face checkpoint config")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"checkpoint version must be the integer {CHECKPOINT_VERSION}, got {version!r}")
    if version != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint version {version} is not supported (expected {CHECKPOINT_VERSION})")


def _check_sections(raw: dict[str, Any]) -> None:
    """The sections' types, and the identity names and meta values that readers use as paths or numbers."""
    for key in ("model", "meta", "preprocessing"):
        if key in raw and not isinstance(raw[key], dict):
            raise ValueError(f"{key!r} must be an object, got {_kind(raw[key])}")
    identities = raw.get("identities", [])
    if not isinstance(identities, list):
        raise ValueError(f"'identities' must be a list of names, got {_kind(identities)}")
    for name in identities:
        check_identity_name(name)
    if len(set(identities)) != len(identities):
        raise ValueError("'identities' lists a name twice")
    crop_scale = raw.get("meta", {}).get("crop_scale")
    if crop_scale is not None and (
        not isinstance(crop_scale, (int, float)) or isinstance(crop_scale, bool) or not 0.0 < crop_scale <= 10.0
    ):
        raise ValueError(f"meta.crop_scale must be a number in (0, 10], got {crop_scale!r}")


def check_identity_name(name: object) -> None:
    """An identity name is one path component, by the dataset's rule (apb2face.data.format.check_name): `../x`, `/x`,
    hidden or empty names would read or write outside the checkpoint's identities folder."""
    check_name(name, "identity")


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return f"{kinds.get(type(value), 'a number')} {str(value)[:40]!r}"


def load_pretrained(directory: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Load a release checkpoint written by `save_pretrained`; the model is in eval mode on `device`."""
    directory = Path(directory)
    config, raw = load_config(directory)
    weights = _weights_file(directory)
    _check_weight_shapes(weights, expected_shapes(config))  # before anything of the file's size is allocated
    model = APB2Face(config)
    _load_state(model, _read_tensors(weights), weights)
    references = load_references(directory, raw)
    model.to(device).eval()
    return Pretrained(
        model=model,
        config=config,
        references=references,
        meta=raw.get("meta", {}),
        preprocessing=raw.get("preprocessing", {}),
    )


def warm_start(model: APB2Face, directory: str | Path, only: str = "all") -> None:
    """Copy a release checkpoint's weights into `model`, whose architecture may add input channels.

    `only="fuser"` copies the fuser's tensors alone (the audio statistics among them) and leaves the rest of `model`
    as initialised, so any renderer can start over a trained fuser; the two fusers must then match exactly.

    Tensors of equal shape are copied. A conv weight the new model widens along its input channels (dim 1, new
    channels appended last, as the sketch's are) gets the old weights in its first channels and zeros in the rest;
    a tensor the checkpoint lacks is accepted only if the new model initialises it to zero (a new branch that starts
    as a no-op, e.g. the mobile sketch's trunk 1x1). So the warm-started model computes exactly what the checkpoint
    did. Anything else is a one-line error."""
    directory = Path(directory)
    config, _ = load_config(directory)
    weights = _weights_file(directory)
    _check_weight_shapes(weights, expected_shapes(config))
    state = _read_tensors(weights)
    prefixes = {"all": "", "fuser": "fuser."}
    if only not in prefixes:
        raise ValueError(f"only must be 'all' or 'fuser', got {only!r}")
    prefix = prefixes[only]
    target = model.state_dict()
    taken = {key: value for key, value in state.items() if key.startswith(prefix)}
    part = {key: value for key, value in target.items() if key.startswith(prefix)}
    target.update(_warm_start_state(part, taken, weights))
    model.load_state_dict(target, strict=True)


def _warm_start_state(
    target: dict[str, torch.Tensor], state: dict[str, torch.Tensor], weights: Path
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors fitted to the model's state dict `target` (see `warm_start`)."""
    missing = sorted(key for key in set(target) - set(state) if target[key].any())
    if missing:
        raise UserError(f"cannot warm-start: {len(missing)} weights missing (e.g. {missing[0]})", weights)
    # a part of the checkpoint the model has no place for (e.g. the reference warp head of a model configured without
    # it) would be dropped without a word, and the run would start from a different model than the checkpoint
    unused = sorted(set(state) - set(target))
    if unused:
        raise UserError(
            f"cannot warm-start: the checkpoint has {len(unused)} weights this model lacks (e.g. {unused[0]}); "
            "configure the model as the checkpoint's config.json (e.g. model.reference_warp=true)",
            weights,
        )
    merged = {}
    for key, new in target.items():
        old = state.get(key, new)
        if old.shape == new.shape:
            merged[key] = old
        elif _widened(tuple(old.shape), tuple(new.shape)):
            widened = torch.zeros_like(new)
            widened[:, : old.shape[1]] = old
            merged[key] = widened
        else:
            raise UserError(
                f"cannot warm-start: {key} has shape {tuple(old.shape)}, the model needs {tuple(new.shape)}", weights
            )
    return merged


def load_references(directory: str | Path, raw: dict[str, Any]) -> dict[str, np.ndarray]:
    """The identity crops listed in a checkpoint's config.json (`raw`, checked by `load_config`), name -> (S, S, 3)
    uint8 RGB. Each PNG's header must give the model's image size before the image is decoded."""
    size = from_dict(ModelConfig, raw.get("model") or {}).image_size
    references = {}
    for name in raw.get("identities", []):
        path = Path(directory) / IDENTITIES_DIR / f"{name}.png"
        _check_png_size(path, size)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError("missing or unreadable identity image", path)
        references[name] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return references


def _check_png_size(path: Path, size: int) -> None:
    """Read the width and height from a PNG's IHDR chunk (bytes 16-24) and require `size` x `size`: a small file
    may claim 40000x40000 pixels, which decoding would allocate."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        raise UserError("missing or unreadable identity image", path) from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise UserError("identity image is not a PNG file", path)
    width, height = struct.unpack(">II", head[16:24])
    if (width, height) != (size, size):
        raise UserError(f"identity image is {width}x{height} px, the model's image size is {size}x{size}", path)


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every weight's shape for `config`, from a model built on the meta device (no memory is allocated)."""
    with torch.device("meta"), _SkipRandomFills():
        model = APB2Face(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


class _SkipRandomFills(TorchFunctionMode):
    """Random initialisation of meta tensors computes nothing, yet its first use loads torch's decompositions
    (seconds); the shapes are all that is wanted, so the fills are skipped."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in ("normal_", "uniform_"):  # Tensor methods and torch.nn.init's
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _weights_file(directory: Path) -> Path:
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError("file not found", weights)
    return weights


def _check_weight_shapes(weights: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Compare the shapes in the safetensors header with the model's before reading any tensor data. Keys the model
    lacks, or lacks in the file, are left to the loader (warm starts accept some); a shape mismatch is refused."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"corrupt weights file ({str(exc).splitlines()[0][:160]})", weights) from None
    unexpected = sorted(set(shapes) - set(expected))
    if unexpected:
        raise UserError(
            f"weights do not match the config's model: {len(unexpected)} unexpected (e.g. {unexpected[0]})", weights
        )
    for key, shape in shapes.items():
        if shape != expected[key] and not _widened(shape, expected[key]):
            raise UserError(
                f"weights do not match the config's model: {key} has shape {shape}, expected {expected[key]}",
                weights,
            )


def _widened(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """A conv weight whose input channels the model widens (what `warm_start` accepts); never larger than `new`."""
    return len(old) == len(new) == 4 and old[0] == new[0] and old[2:] == new[2:] and old[1] < new[1]


def _read_tensors(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file whose header was checked; a corrupt file is a one-line UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
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
    check_identity_name(name)
    if image.dtype != np.uint8 or image.shape != (size, size, 3):
        raise ValueError(
            f"identity {name!r}: expected a ({size}, {size}, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
