"""A tiny dataset written with DatasetWriter from random arrays (2 identities x 2 clips, 64 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apb2face.data.face import canonical_face
from apb2face.data.format import DatasetWriter


def write_tiny_dataset(
    root: Path,
    size: int = 64,
    frames: int = 12,
    fps: float = 25.0,
    seed: int = 0,
    shifts: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """shifts: identity -> (dx, dy) added to all its landmarks (a person with another face shape)."""
    rng = np.random.default_rng(seed)
    face = canonical_face()[:, :2]
    face = (face - face.min(0)) / (face.max(0) - face.min(0)) * 0.6 + 0.2
    writer = DatasetWriter(root, image_size=size, sample_rate=16000, fps=fps, source="test")
    for identity, colour in (("anna", (200, 120, 90)), ("ben", (90, 120, 200))):
        for clip in ("c0", "c1"):
            base = np.full((size, size, 3), colour, np.uint8)
            imgs = np.clip(base[None] + rng.integers(-40, 40, (frames, size, size, 3)), 0, 255).astype(np.uint8)
            n_samples = int(frames / fps * 16000)
            t = np.arange(n_samples) / 16000
            audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (rng.random(n_samples) > 0.5)).astype(np.float32)
            lms = (face[None] + rng.normal(0, 0.005, (frames, 478, 2))).astype(np.float32)
            lms += np.asarray((shifts or {}).get(identity, (0.0, 0.0)), np.float32)
            writer.add_clip(
                identity,
                clip,
                frames=imgs,
                audio=audio,
                landmarks=lms,
                pose=rng.normal(0, 5, (frames, 3)),
                eyes=rng.random((frames, 2)),
            )
    writer.finish(test_fraction=0.5, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")
