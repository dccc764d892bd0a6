"""Decoupling check (`apb2face decouple`, the paper's Figure 4): sweep one control signal at a time (yaw, pitch,
roll, eye openness) with the others held neutral and the audio silent, and measure what the generated faces do.

A model whose controls are decoupled turns the head the way it is told (the measured angle follows the swept one
monotonically: Spearman rank correlation), closes the eyes when told (EAR follows openness), and keeps the mouth
still throughout (the audio never changes, so the mouth opening should not either).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.data import audio as A
from apb2face.evaluation.face_measure import measure_face_mesh
from apb2face.evaluation.figures import tile, write_png
from apb2face.io import write_json

log = logging.getLogger(__name__)

SWEPT = ("yaw", "pitch", "roll", "blink")
SILENCE_DBFS = -60.0  # the "silent" driving audio: faint seeded noise, like a quiet room in the recordings


@dataclass
class DecoupleConfig:
    steps: int = 7
    yaw: float = 25.0  # sweep -yaw .. +yaw degrees
    pitch: float = 15.0
    roll: float = 15.0
    min_spearman: float = 0.9  # measured vs swept rank correlation needed to pass
    max_mouth_std: float = 0.03  # mouth opening (inner-lip gap / width) std allowed within one sweep
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 3:
            raise ValueError(f"steps must be at least 3 (a rank correlation needs them), got {self.steps}")
        for name in ("yaw", "pitch", "roll"):
            if not 0 < getattr(self, name) <= 90:
                raise ValueError(f"{name} must be in (0, 90] degrees, got {getattr(self, name)}")
        if not -1 <= self.min_spearman <= 1 or self.max_mouth_std < 0:
            raise ValueError("min_spearman must be in [-1, 1] and max_mouth_std >= 0")


def sweep_values(cfg: DecoupleConfig) -> dict[str, np.ndarray]:
    """The swept value per column: degrees for the angles, eye openness 1 (open) .. 0 (closed) for blink."""
    return {
        "yaw": np.linspace(-cfg.yaw, cfg.yaw, cfg.steps),
        "pitch": np.linspace(-cfg.pitch, cfg.pitch, cfg.steps),
        "roll": np.linspace(-cfg.roll, cfg.roll, cfg.steps),
        "blink": np.linspace(1.0, 0.0, cfg.steps),
    }


def controls(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pose (K, 3), eyes (K, 2)) for a sweep of one signal, everything else neutral (frontal, eyes open)."""
    pose = np.zeros((len(values), 3), np.float32)
    eyes = np.ones((len(values), 2), np.float32)
    if name == "blink":
        eyes[:] = values[:, None]
    else:
        pose[:, ("yaw", "pitch", "roll").index(name)] = values
    return pose, eyes


def silent_windows(pipe: Any, count: int, fps: float = 25.0, seed: int = 0) -> np.ndarray:
    """Audio windows of one second of near-silence (the same window for every frame)."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal(A.SAMPLE_RATE) * 10 ** (SILENCE_DBFS / 20)).astype(np.float32)
    features = pipe.audio_features(audio)
    middle = int(fps // 2)
    return pipe.audio_windows(features, np.full(count, middle), fps)


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: pose (3,), mean EAR, mouth opening; NaN where the face mesh finds no face. Each image is read on
    its own: a sweep jumps between poses, so tracking from one image to the next would only mislead the mesh."""
    mesh = measure_face_mesh(images, video=False)
    return {"pose": mesh.pose, "ear": mesh.ear.mean(axis=1), "mouth": mesh.mouth}


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation over the finite pairs; None with fewer than 3 or a constant series."""
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def check_sweep(name: str, values: np.ndarray, measured: dict[str, np.ndarray], cfg: DecoupleConfig) -> dict[str, Any]:
    """The verdict for one sweep: the measured signal follows the swept one, the mouth stays still."""
    if name == "blink":
        response = measured["ear"]
    else:
        response = measured["pose"][:, ("yaw", "pitch", "roll").index(name)]
    rho = spearman(values, response)
    mouth = measured["mouth"]
    finite_mouth = mouth[np.isfinite(mouth)]
    mouth_std = float(np.std(finite_mouth)) if finite_mouth.size >= 2 else None
    follows = rho is not None and rho >= cfg.min_spearman
    still = mouth_std is not None and mouth_std <= cfg.max_mouth_std
    return {
        "swept": [round(float(v), 4) for v in values],
        "measured": [None if not np.isfinite(v) else round(float(v), 4) for v in response],
        "measured_what": "mean eye aspect ratio" if name == "blink" else f"{name} in degrees (face.estimate_pose)",
        "spearman": rho,
        "mouth_opening": [None if not np.isfinite(v) else round(float(v), 4) for v in mouth],
        "mouth_std": mouth_std,
        "faces_found": int(np.isfinite(response).sum()),
        "follows": bool(follows),
        "mouth_still": bool(still),
        "passed": bool(follows and still),
    }


def decouple(
    checkpoint: str | Path, reference: str, out: str | Path, cfg: DecoupleConfig, *, allow_unknown: bool = False
) -> dict[str, Any]:
    """Render the four sweeps, measure them, write OUT/decouple.png and OUT/decouple.json; returns the JSON.
    `allow_unknown`: a photo of someone the checkpoint does not know is rendered instead of refused."""
    from apb2face.inference.pipeline import APB2FacePipeline

    out = Path(out)
    pipe = APB2FacePipeline.from_pretrained(checkpoint, device=cfg.device)
    state = pipe.prepare_reference(reference, allow_unknown=allow_unknown)
    values = sweep_values(cfg)
    windows = silent_windows(pipe, cfg.steps)
    rows, labels, result = [], [], {}
    for name in SWEPT:
        pose, eyes = controls(name, values[name])
        frames, _ = pipe.step(state, windows, pose, eyes)
        result[name] = check_sweep(name, values[name], measure(frames), cfg)
        rows.append(list(frames))
        what = "eye openness" if name == "blink" else f"{name} (deg)"
        swept = "  ".join(f"{v:.2f}" if name == "blink" else f"{v:+.0f}" for v in values[name])
        labels.append(
            f"{what}: {swept}   (Spearman {_fmt(result[name]['spearman'])}, mouth std "
            f"{_fmt(result[name]['mouth_std'], 3)})"
        )
    image = tile(
        [[state.crop] + r for r in rows],
        header=["reference"] + [""] * cfg.steps,
        row_labels=labels,
        title=f"decoupling sweeps of {state.name} (silent audio, other controls neutral)",
    )
    write_png(out / "decouple.png", image)
    report = {
        "checkpoint": str(checkpoint),
        "reference": state.name,
        "steps": cfg.steps,
        "criteria": {"min_spearman": cfg.min_spearman, "max_mouth_std": cfg.max_mouth_std},
        "audio": f"silence ({SILENCE_DBFS:g} dBFS seeded noise)",
        "sweeps": result,
        "passed": all(r["passed"] for r in result.values()),
    }
    write_json(out / "decouple.json", report)
    return report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"{'sweep':<6} {'spearman':>9} {'mouth std':>10} {'faces':>6}  verdict"]
    for name, r in report["sweeps"].items():
        if r["passed"]:
            verdict = "PASS"
        elif r["faces_found"] == 0:
            verdict = "FAIL (no face found in the outputs)"
        else:
            verdict = (
                "FAIL"
                + ("" if r["follows"] else " (does not follow)")
                + ("" if r["mouth_still"] else " (mouth moves)")
            )
        lines.append(
            f"{name:<6} {_fmt(r['spearman']):>9} {_fmt(r['mouth_std'], 3):>10} "
            f"{r['faces_found']:>3}/{len(r['swept']):<2}  {verdict}"
        )
    lines.append("overall: " + ("PASS" if report["passed"] else "FAIL"))
    return lines
