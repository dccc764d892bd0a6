"""A training run's folder on disk: the run description, metrics, training checkpoints and the model card.

Layout (every file and folder written atomically)::

    RUN/run.json                   the resolved RunConfig and the dataset path
    RUN/metrics.jsonl              one JSON line per step, each appended in one write
    RUN/tb/                        TensorBoard scalars and image grids
    RUN/images/step_XXXXXXX.png    reference | generated | target | target with predicted landmarks
    RUN/checkpoints/step_XXXXXXX/  model.safetensors, discriminator.safetensors, state.pt (optimisers, RNG, step)
    RUN/latest/, RUN/final/        release checkpoints (apb2face.models.modeling.save_pretrained)

A run killed at any moment (SIGKILL included) resumes from its last complete checkpoint; what such a kill leaves
behind (hidden temporaries, a torn last metrics line) is removed or ignored when the run starts again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apb2face.config import from_dict
from apb2face.errors import UserError
from apb2face.io import atomic_path, read_json, remove_stale_temporaries
from apb2face.training.config import RunConfig

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
IMAGES_DIR = "images"
TENSORBOARD_DIR = "tb"
RELEASE_DIRS = ("latest", "final")
# what a run writes besides its checkpoints: removed when a run that never reached a checkpoint starts again
UNFINISHED_RUN_FILES = (METRICS_FILE, IMAGES_DIR, TENSORBOARD_DIR)
_RANDOM = "[a-z0-9_]{8}"  # the random part of tempfile's names (apb2face.io's temporaries)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete training checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.is_dir() and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


@dataclasses.dataclass(frozen=True)
class RunDescription:
    """What a run was started with (its RUN_FILE): the config and the dataset(s) with their repeat counts."""

    config: RunConfig
    data: list[str]
    data_repeats: list[int] | None = None


def load_run_config(run_dir: Path, overrides: list[str]) -> RunDescription:
    """The RunConfig and dataset path(s) a run was started with (for --resume), with overrides applied."""
    from apb2face.config import apply_overrides

    path = Path(run_dir) / RUN_FILE
    raw = read_json(path)
    data = raw.get("data") if isinstance(raw, dict) else None
    data = [data] if isinstance(data, str) else data
    repeats = raw.get("data_repeats") if isinstance(raw, dict) else None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("config"), dict)
        or not (isinstance(data, list) and data and all(isinstance(d, str) for d in data))
        or not (repeats is None or (isinstance(repeats, list) and len(repeats) == len(data)))
    ):
        raise UserError("not a training run description", path)
    try:
        return RunDescription(from_dict(RunConfig, apply_overrides(raw["config"], overrides)), data, repeats)
    except UserError as exc:
        raise UserError(str(exc), path) from None


def config_differences(run: RunConfig, other: RunConfig) -> list[str]:
    """The keys (`train.steps`) whose values differ between two run configs, as `key: a != b`."""
    a, b = _flatten(dataclasses.asdict(run)), _flatten(dataclasses.asdict(other))
    return [f"{key}: {a.get(key)!r} != {b.get(key)!r}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


def model_card(run: RunConfig, meta: dict[str, Any], identities: list[str]) -> str:
    """A factual model card for a release checkpoint written by training (evaluation results are added by
    whoever evaluates it)."""
    m, t = run.model, run.train
    return "\n".join(
        [
            "# APB2Face checkpoint",
            "",
            f"- model: generator `{m.generator}` (width {m.generator_width}), {m.image_size}x{m.image_size} px, "
            f"audio window {m.audio_window} feature frames with {m.audio_lookahead} after the frame centre "
            f"({m.audio_lookahead * 10} ms look-ahead)",
            f"- data: `{meta['dataset']}` ({meta['dataset_source'] or 'unknown source'}), {meta['fps']} fps, "
            f"train split; identities: {', '.join(identities)}",
            f"- training: step {meta['step']} of a {t.steps}-step schedule, global batch {t.batch_size}, "
            f"Adam lr {t.lr} betas {tuple(t.betas)}, losses {t.lambda_l1} L1 + {t.lambda_gan} LSGAN + "
            f"{t.lambda_geometry} landmark L1, "
            f"seed {t.seed}",
            f"- wall time: {meta['wall_seconds']:.0f} s on {meta['processes']} process(es), device {meta['device']}",
            "",
            "Use: `apb2face generate --checkpoint DIR --reference NAME --audio speech.wav --out out.mp4`.",
            "",
        ]
    )


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as contiguous CPU tensors (what safetensors writes)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------------- metrics
def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line in a single write to a file opened for appending: a kill leaves either the whole line
    or, at worst, a torn last line that `read_metrics` ignores."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(Path(run_dir) / METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if os.write(fd, line) != len(line):
            raise OSError(28, "short write (disk full?)")
    finally:
        os.close(fd)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl. A torn last line (a run killed while appending) is dropped; a damaged line
    before it is a UserError."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").split("\n")
    torn = lines.pop()  # the text after the last newline: empty unless the last append was cut short
    if torn:
        log.warning("%s: ignored a torn last line (the run was stopped while writing it)", path)
    records = []
    for number, line in enumerate(lines, 1):
        record = _metrics_record(line)
        if record is None and line.strip():
            raise UserError(f"line {number} is not a metrics record", path)
        if record is not None:
            records.append(record)
    return records


def _metrics_record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def trim_metrics(run_dir: Path, step: int) -> None:
    """Keep the records of steps up to `step` (a resumed run computes the later ones again), and drop a torn tail."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [record for record in read_metrics(run_dir) if record["step"] <= step]
    text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in kept)
    if text != path.read_text(errors="replace"):
        with atomic_path(path) as tmp:
            tmp.write_text(text)


# ---------------------------------------------------------------------------------------------------- leftovers
def remove_stale_temporaries_of_run(run_dir: Path) -> int:
    """Remove the hidden temporaries a killed run left in its folder (a checkpoint or release being written, an
    image grid): apb2face.io removes those of a target when it is written again, but checkpoint and image names
    carry the step, so nothing would write them again. apb2face.io logs what it removes. Returns the bytes freed."""
    run_dir = Path(run_dir)
    freed = 0
    for name in RELEASE_DIRS:
        freed += _remove_dir_temporaries(run_dir, name)
    for name in _temporary_targets(run_dir / CHECKPOINTS_DIR, r"\.(step_\d+)\.(?:tmp|old)-" + _RANDOM):
        freed += _remove_dir_temporaries(run_dir / CHECKPOINTS_DIR, name)
    images = run_dir / IMAGES_DIR
    for stem in _temporary_targets(images, r"\.(step_\d+)\." + _RANDOM + r"\.png"):
        freed += remove_stale_temporaries(images, re.escape(f".{stem}.") + _RANDOM + r"\.png", f"{stem}.png")
    return freed


def _remove_dir_temporaries(folder: Path, name: str) -> int:
    # a swapped-out previous folder (.old-) is removed only while its replacement exists: else it is the only copy
    return remove_stale_temporaries(folder, re.escape(f".{name}.tmp-") + _RANDOM, name) + remove_stale_temporaries(
        folder, re.escape(f".{name}.old-") + _RANDOM, name, only_if_target=True
    )


def _temporary_targets(folder: Path, pattern: str) -> list[str]:
    """The target names of the temporaries in `folder` whose names match `pattern` (group 1 = the target)."""
    if not folder.is_dir():
        return []
    matcher = re.compile(pattern + r"\Z")
    return sorted({m.group(1) for m in (matcher.match(p.name) for p in folder.iterdir()) if m})


# ---------------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Every random generator training draws from, as tensors and plain values (torch.load weights_only)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state((state["numpy"][0], state["numpy"][1].numpy().astype(np.uint32), *state["numpy"][2:]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
