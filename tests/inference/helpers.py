"""Shared builders for generation tests: a tiny random checkpoint, a real photo, real speech."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np


def noise_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: noise bursts with a syllable-rate envelope and silent gaps (float32, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, 6)), 0, None) ** 2
    return (rng.standard_normal(len(t)) * 0.2 * envelope).astype(np.float32)


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """A real portrait photo (scikit-image's public-domain astronaut, 512x512 RGB)."""
    from skimage import data

    return data.astronaut()


@lru_cache(maxsize=1)
def grace_hopper() -> np.ndarray:
    """A real portrait of someone else (matplotlib's public-domain Grace Hopper sample, 600x512 RGB)."""
    import matplotlib.cbook
    import matplotlib.image

    image = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    return np.ascontiguousarray(np.asarray(image)[..., :3])


@lru_cache(maxsize=1)
def speech() -> tuple[np.ndarray, int]:
    """A short real English sentence from espeak-ng (16 kHz mono float32)."""
    from apb2face.data.synth.speech import synthesize

    s = synthesize("Hello, this is a short test.")
    return s.audio, s.sample_rate


def make_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised `tiny` model saved as a release checkpoint with two bundled identities."""
    import torch

    from apb2face.config import load
    from apb2face.inference.faces import align_face
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.modeling import save_pretrained
    from apb2face.training.config import RunConfig

    torch.manual_seed(seed)
    config = load(RunConfig, "tiny").model
    crop, _pose = align_face(astronaut(), config.image_size)
    save_pretrained(
        APB2Face(config), directory, references={"astronaut": crop, "mirrored": np.ascontiguousarray(crop[:, ::-1])}
    )
    return directory


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    import soundfile as sf

    sf.write(path, audio, sample_rate, subtype="PCM_16" if path.suffix.lower() in (".wav", ".flac") else None)
    return path


def demo_identity(name: str, side: int) -> np.ndarray:
    """A built-in person of the demo checkpoint (its identity crop, RGB) at `side` px."""
    import cv2

    from apb2face.inference.faces import read_image
    from apb2face.inference.pipeline import default_checkpoint

    image = read_image(default_checkpoint() / "identities" / f"{name}.png")
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC if side > image.shape[0] else cv2.INTER_AREA)


def two_person_scene(left: str = "id00", right: str = "id03", side: int = 160) -> np.ndarray:
    """Two built-in people side by side on one canvas (H = side, W = 2 side)."""
    return np.concatenate([demo_identity(left, side), demo_identity(right, side)], axis=1)


def make_scene_checkpoint(directory: Path, names: tuple[str, ...] = ("id00", "id03"), seed: int = 0) -> Path:
    """A randomly initialised `tiny` model bundling built-in people who differ (the face recogniser tells them
    apart), for fast scene tests."""
    import torch

    from apb2face.config import load
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.modeling import save_pretrained
    from apb2face.training.config import RunConfig

    torch.manual_seed(seed)
    config = load(RunConfig, "tiny").model
    references = {name: demo_identity(name, config.image_size) for name in names}
    save_pretrained(APB2Face(config), directory, references=references)
    return directory
