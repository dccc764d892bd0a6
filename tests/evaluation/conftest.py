"""Fixtures for the evaluation commands: a tiny built-in synth dataset and a tiny random checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 synthetic people x 2 sentences at 64 px (one train and one test clip each)."""
    from apb2face.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, SynthConfig(identities=2, clips_per_identity=2, size=64, seed=0, workers=1, videos=False))
    return out


def make_checkpoint(directory: Path, dataset: Path, identities: list[str] | None = None) -> Path:
    """A randomly initialised `tiny` model bundling the first train frame of each (or the given) identity."""
    import torch

    from apb2face.config import load
    from apb2face.data.format import Dataset
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.modeling import save_pretrained
    from apb2face.training.config import RunConfig

    torch.manual_seed(0)
    config = load(RunConfig, "tiny").model
    ds = Dataset(dataset)
    refs = {}
    for name in identities if identities is not None else ds.identities:
        clip = ds.load_clip(ds.clips("train", identity=name)[0])
        refs[name] = np.ascontiguousarray(clip.frames[0])
        assert refs[name].shape[0] == config.image_size
    return save_pretrained(APB2Face(config), directory, references=refs)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_dataset)


def dataset_with_identity(source: Path, root: Path, name: str) -> Path:
    """A copy of `source` whose identity id01 is renamed `name` in dataset.json, its clip files moved to where that
    name points (so that a reader following the name finds them)."""
    shutil.copytree(source, root)
    meta = json.loads((root / "dataset.json").read_text())
    for clip in meta["clips"]:
        if clip["identity"] == "id01":
            clip["identity"] = name
    meta["splits"] = {
        split: [key.replace("id01/", f"{name}/", 1) for key in keys] for split, keys in meta["splits"].items()
    }
    meta["identities"] = sorted({c["identity"] for c in meta["clips"]})
    (root / "dataset.json").write_text(json.dumps(meta))
    target = root / "clips" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / "clips" / "id01", target)
    return root
