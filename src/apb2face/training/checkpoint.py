"""A training run's folder on disk: the run description, training checkpoints and the model card.

RUN/run.json                   the resolved RunConfig and the dataset path
RUN/metrics.jsonl              one JSON line per step
RUN/checkpoints/step_XXXXXXX/  model.safetensors, discriminator.safetensors, state.pt (optimisers, RNG, step)
RUN/latest/, RUN/final/        release checkpoints (apb2face.models.modeling.save_pretrained)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from apb2face.config import from_dict
from apb2face.errors import UserError
from apb2face.io import read_json
from apb2face.training.config import RunConfig

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"


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


def load_run_config(run_dir: Path, overrides: list[str]) -> tuple[RunConfig, str]:
    """The RunConfig and dataset path a run was started with (for --resume), with overrides applied."""
    from apb2face.config import apply_overrides

    raw = read_json(Path(run_dir) / RUN_FILE)
    try:
        return from_dict(RunConfig, apply_overrides(raw["config"], overrides)), raw["data"]
    except (KeyError, TypeError):
        raise UserError("not a training run description", Path(run_dir) / RUN_FILE) from None


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
