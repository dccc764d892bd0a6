"""Release checkpoints: exact round trip, atomic replacement, one-line errors for bad checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
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


# --------------------------------------------------------------------------- a checkpoint is untrusted input
def edit_config(out, change) -> None:  # noqa: ANN001
    cfg = json.loads((out / "config.json").read_text())
    change(cfg)
    (out / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("latent_dim", 1_000_000, "latent_dim"),
        ("audio_window", 1_600_000, "audio_window"),
        ("discriminator_width", 10**7, "discriminator_width"),
        ("latent_dim", 256.5, "latent_dim"),
    ],
)
def test_size_fields_are_bounded_before_anything_is_built(tmp_path, model, key, value, words):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    edit_config(out, lambda cfg: cfg["model"].__setitem__(key, value))
    with pytest.raises(UserError, match=f"config.json.*{words}"):
        load_pretrained(out)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda cfg: cfg.__setitem__("model", "tiny"), "'model' must be an object"),
        (lambda cfg: cfg.__setitem__("identities", "alice"), "'identities' must be a list"),
        (lambda cfg: cfg.__setitem__("identities", [1]), "invalid identity name 1"),
        (lambda cfg: cfg.__setitem__("meta", []), "'meta' must be an object"),
        (lambda cfg: cfg["meta"].__setitem__("crop_scale", "big"), "crop_scale"),
        (lambda cfg: cfg.__setitem__("version", "1"), "version must be the integer 1, got '1'"),
        (lambda cfg: cfg.__setitem__("identities", ["../outside"]), "invalid identity name '../outside'"),
        (lambda cfg: cfg.__setitem__("identities", ["/etc/hostname"]), "invalid identity name"),
    ],
)
def test_wrong_types_and_names_are_one_user_error_naming_config(tmp_path, model, change, words):
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    (out / "outside.png").write_bytes((out / "identities" / "alice.png").read_bytes())  # must never be read
    edit_config(out, change)
    with pytest.raises(UserError, match="config.json") as exc:
        load_pretrained(out)
    assert words in str(exc.value)


def test_weight_shapes_are_checked_from_the_header(tmp_path, model):
    from apb2face.models.modeling import expected_shapes

    for config in (model.config, ModelConfig(generator="mobile", geometry_sketch=True, image_size=64)):
        built = APB2Face(config)
        assert expected_shapes(config) == {k: tuple(v.shape) for k, v in built.state_dict().items()}
    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    edit_config(out, lambda cfg: cfg["model"].__setitem__("latent_dim", 512))
    with pytest.raises(UserError, match="model.safetensors.*do not match.*shape"):
        load_pretrained(out)


def test_identity_png_claiming_a_huge_size_is_refused_before_decoding(tmp_path, model):
    import struct
    import zlib

    out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    path = out / "identities" / "bob.png"
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", 40000, 40000) + bytes(data[24:29])
    data[16:24] = ihdr[4:12]
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))  # a valid header: only its size is absurd
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="bob.png.*40000x40000"):
        load_pretrained(out)


def test_release_folder_gets_the_usual_mode(tmp_path, model):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        out = save_pretrained(model, tmp_path / "ckpt", refs(64))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    # every file too: safetensors writes its file private (0600), which another user could not load
    assert {stat.S_IMODE(f.stat().st_mode) for f in out.rglob("*") if f.is_file()} == {0o644}
