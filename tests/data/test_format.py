"""Dataset format v1: round trip, validation, by-clip splits, refusal of foreign or newer datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import format as fmt
from apb2face.errors import UserError


def _arrays(n: int, size: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        frames=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        audio=(rng.standard_normal(640 * n) * 0.1).astype(np.float32),
        landmarks=rng.random((n, 478, 2)).astype(np.float32),
        pose=rng.uniform(-10, 10, (n, 3)).astype(np.float32),
        eyes=rng.random((n, 2)).astype(np.float32),
    )


def test_round_trip(tmp_path: Path) -> None:
    w = fmt.DatasetWriter(tmp_path, image_size=16, sample_rate=16000, fps=25.0, source="test")
    written = {}
    for ident in ("bob", "amy"):
        for k in range(3):
            a = _arrays(5 + k, seed=k + 10 * len(ident))
            w.add_clip(ident, f"c{k}", text=f"sentence {k}", extra={"voice": "en-us"}, **a)
            written[f"{ident}/c{k}"] = a
    meta = w.finish(test_fraction=0.34, seed=3)
    ds = fmt.Dataset(tmp_path)
    assert ds.identities == ["amy", "bob"]
    assert [c.key for c in ds.clips()] == sorted(written)
    for key, a in written.items():
        clip = ds.load_clip(key)
        np.testing.assert_array_equal(clip.frames, a["frames"])
        np.testing.assert_array_equal(clip.landmarks, a["landmarks"])
        np.testing.assert_array_equal(clip.pose, a["pose"])
        np.testing.assert_array_equal(clip.eyes, a["eyes"])
        assert np.abs(clip.audio - a["audio"]).max() < 1e-4  # PCM16
        assert clip.sample_rate == 16000 and clip.fps == 25.0 and clip.record.num_frames == len(a["frames"])
        assert isinstance(clip.frames, np.memmap)
    assert json.loads((tmp_path / "clips/bob/c1/clip.json").read_text())["voice"] == "en-us"
    raw = json.loads((tmp_path / "dataset.json").read_text())
    assert raw["format"] == "apb2face-dataset" and raw["version"] == 1 and raw["landmark_scheme"] == "mediapipe-478"
    assert str(tmp_path) not in (tmp_path / "dataset.json").read_text()  # no absolute paths
    assert meta.splits == ds.meta.splits


def test_split_is_by_clip_seeded_and_covers_every_identity() -> None:
    keys = [f"id{i}/c{j}" for i in range(4) for j in range(5)] + ["solo/c0"]
    a = fmt.split_by_clip(keys, 0.2, seed=1)
    assert a == fmt.split_by_clip(list(reversed(keys)), 0.2, seed=1)
    assert set(a["train"]) | set(a["test"]) == set(keys) and not set(a["train"]) & set(a["test"])
    for i in range(4):
        assert sum(k.startswith(f"id{i}/") for k in a["test"]) == 1
        assert sum(k.startswith(f"id{i}/") for k in a["train"]) == 4
    assert "solo/c0" in a["train"]  # a single clip can't be split
    others = [fmt.split_by_clip(keys, 0.2, seed=s)["test"] for s in range(2, 8)]
    assert any(o != a["test"] for o in others)


def test_validation_rejects_bad_arrays_and_names(tmp_path: Path) -> None:
    w = fmt.DatasetWriter(tmp_path, image_size=16, sample_rate=16000, fps=25.0)
    a = _arrays(4)
    with pytest.raises(ValueError, match="frames"):
        w.add_clip("x", "c", **{**a, "frames": a["frames"][:, :8]})
    with pytest.raises(ValueError, match="pose"):
        w.add_clip("x", "c", **{**a, "pose": a["pose"][:3]})
    with pytest.raises(ValueError, match="invalid identity"):
        w.add_clip("a/b", "c", **a)
    with pytest.raises(ValueError, match="mono"):
        w.add_clip("x", "c", **{**a, "audio": np.zeros((10, 2), np.float32)})
    with pytest.raises(ValueError, match="no files"):
        w.register(fmt.ClipRecord("x", "missing", 3))


def test_register_clip_written_by_another_writer(tmp_path: Path) -> None:
    other = fmt.DatasetWriter(tmp_path, image_size=16, sample_rate=16000, fps=25.0)
    rec = other.add_clip("x", "c0", **_arrays(3))
    main = fmt.DatasetWriter(tmp_path, image_size=16, sample_rate=16000, fps=25.0)
    main.register(rec)
    main.finish()
    assert [c.key for c in fmt.Dataset(tmp_path).clips()] == ["x/c0"]


def test_reader_refuses_missing_foreign_and_newer(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no dataset.json"):
        fmt.Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not an apb2face dataset"):
        fmt.Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "apb2face-dataset", "version": 99}))
    with pytest.raises(UserError, match="version 99"):
        fmt.Dataset(tmp_path)
