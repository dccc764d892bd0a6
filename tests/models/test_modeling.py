"""Release checkpoints: exact round trip, atomic replacement, one-line errors for bad checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.models.apb2face import APB2Face
from apb2face.models.modeling import load_pretrained, save_pretrained
from apb2face.training.config import RunConfig


@pytest.fixture
def model() -> APB2Face:
    torch.manual_seed(0)
    m = APB2Face(load(RunConfig, "tiny").model)
    m.fuser.set_audio_stats(torch.linspace(-1, 1, 60), torch.linspace(0.5, 2, 60))
    for p in m.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    return m


def refs(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "alice": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "bob": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
    }


def test_save_load_exact(tmp_path, model):
    references = refs(64)
    out = save_pretrained(model, tmp_path / "ckpt", references, extra={"fps": 25.0}, readme="# card\n")
    loaded = load_pretrained(out)
    assert loaded.config == model.config
    assert loaded.meta == {"fps": 25.0}
    assert loaded.preprocessing["audio_lookahead"] == model.config.audio_lookahead
    assert (out / "README.md").read_text() == "# card\n"
    assert sorted(loaded.references) == ["alice", "bob"]
    for name, image in references.items():
        np.testing.assert_array_equal(loaded.references[name], image)
    a, b = model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not loaded.model.training
    # replacing an existing checkpoint leaves no temporary directories behind
    save_pretrained(model, out, references)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_corrupt_weights_is_user_error(tmp_path, model):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="model.safetensors"):
        load_pretrained(out)


def test_garbage_weights_is_user_error(tmp_path, model):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    (out / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserError, match="model.safetensors"):
        load_pretrained(out)


def test_mismatched_config_is_user_error(tmp_path, model):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    cfg = json.loads((out / "config.json").read_text())
    cfg["model"]["generator_width"] = 0.5
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="model.safetensors.*do not match"):
        load_pretrained(out)


@pytest.mark.parametrize("damage", ["missing_config", "bad_json", "bad_value", "missing_identity", "no_dir"])
def test_damaged_checkpoint_is_user_error_naming_file(tmp_path, model, damage):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    expected = "config.json"
    if damage == "missing_config":
        (out / "config.json").unlink()
    elif damage == "bad_json":
        (out / "config.json").write_text("{oops")
    elif damage == "bad_value":
        cfg = json.loads((out / "config.json").read_text())
        cfg["model"]["image_size"] = 99
        (out / "config.json").write_text(json.dumps(cfg))
    elif damage == "missing_identity":
        (out / "identities" / "bob.png").unlink()
        expected = "bob.png"
    else:
        out = tmp_path / "nothing"
        expected = "nothing"
    with pytest.raises(UserError, match=expected):
        load_pretrained(out)


def test_reference_of_wrong_size_is_rejected(tmp_path, model):
    with pytest.raises(ValueError, match="alice"):
        save_pretrained(model, tmp_path / "ckpt", refs(32))
    assert not (tmp_path / "ckpt").exists()
