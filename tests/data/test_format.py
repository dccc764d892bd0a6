"""Dataset format v1: round trip, validation, by-clip splits, refusal of foreign or newer datasets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------------------------------------ reading checks


def _written(root: Path, n: int = 4) -> Path:
    """A valid two-clip dataset of one identity."""
    w = fmt.DatasetWriter(root, image_size=16, sample_rate=16000, fps=25.0)
    w.add_clip("amy", "c0", **_arrays(n))
    w.add_clip("amy", "c1", **_arrays(n, seed=1))
    w.finish(splits={"train": ["amy/c0"], "test": ["amy/c1"]})
    return root


def _edit_meta(root: Path, edit: Callable[[Any], object]) -> Path:
    path = root / "dataset.json"
    meta = json.loads(path.read_text())
    meta = edit(meta) or meta  # an edit either changes the parsed JSON in place or returns a replacement
    path.write_text(json.dumps(meta))
    return path


def _refused_naming(path: Path, *words: str) -> None:
    with pytest.raises(UserError) as info:
        fmt.Dataset(path.parent if path.name == "dataset.json" else path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("bad", ["../x", "../../x", "/abs", "", ".hidden", "a/b", " padded"])
@pytest.mark.parametrize("field", ["identity", "name"])
def test_reader_refuses_names_the_writer_refuses(tmp_path: Path, bad: str, field: str) -> None:
    """Identity and clip names from dataset.json become paths: one that leaves clips/ (or hides) is refused when
    the dataset is opened, with one UserError naming dataset.json and the name."""

    def rename(meta: dict) -> None:
        old = f"{meta['clips'][0]['identity']}/{meta['clips'][0]['name']}"
        meta["clips"][0][field] = bad
        new = f"{meta['clips'][0]['identity']}/{meta['clips'][0]['name']}"
        meta["splits"] = {k: [new if key == old else key for key in v] for k, v in meta["splits"].items()}

    path = _edit_meta(_written(tmp_path), rename)
    _refused_naming(path, repr(bad))
    with pytest.raises(ValueError, match="invalid"):  # the writer's rule is the same one
        fmt.DatasetWriter(tmp_path / "w", image_size=16, sample_rate=16000, fps=25.0).add_clip(
            bad if field == "identity" else "amy", bad if field == "name" else "c", **_arrays(2)
        )


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda m: [m], ["JSON object", "list"]),
        (lambda m: {k: v for k, v in m.items() if k != "clips"}, ["missing key 'clips'"]),
        (lambda m: {k: v for k, v in m.items() if k != "fps"}, ["missing key 'fps'"]),
        (lambda m: m.update(fps="25"), ["fps must be a number"]),
        (lambda m: m.update(fps=0), ["fps must be positive"]),
        (lambda m: m.update(fps=-25.0), ["fps must be positive"]),
        (lambda m: m.update(image_size=16.5), ["image_size must be an integer"]),
        (lambda m: m.update(sample_rate=True), ["sample_rate must be an integer"]),
        (lambda m: m.update(clips={"amy/c0": 4}), ["clips must be a list"]),
        (lambda m: m.update(clips=["amy/c0"]), ["clips[0] must be an object"]),
        (lambda m: m["clips"][1].update(num_frames="4"), ["clips[1].num_frames must be an integer"]),
        (lambda m: m["clips"][1].pop("identity") and None, ["missing key 'identity' in clips[1]"]),
        (lambda m: m["clips"].append(dict(m["clips"][0])), ["listed twice"]),
        (lambda m: m.update(splits=["amy/c0"]), ["splits must be an object"]),
        (lambda m: m["splits"]["test"].append("amy/ghost"), ["'amy/ghost'", "not among the dataset's clips"]),
        (lambda m: m.update(version="1"), ["version '1' is not supported"]),
    ],
)
def test_reader_refuses_dataset_json_of_the_wrong_shape(tmp_path: Path, edit: Callable, words: list[str]) -> None:
    path = _edit_meta(_written(tmp_path), edit)
    _refused_naming(path, *words)


def _replace_array(root: Path, file: str, array: np.ndarray) -> Path:
    path = root / "clips" / "amy" / "c0" / file
    np.save(path, array, allow_pickle=False)
    return path


@pytest.mark.parametrize(
    "file,make",
    [
        ("frames.npy", lambda a: a["frames"][..., 0]),  # 3-D frames (grey)
        ("frames.npy", lambda a: a["frames"].astype(np.float64) / 255),  # float frames: found only after training
        ("frames.npy", lambda a: a["frames"][:, :8, :8]),  # not the dataset's image size
        ("frames.npy", lambda a: a["frames"][:3]),  # fewer frames than dataset.json says
        ("landmarks.npy", lambda a: a["landmarks"][:, :100]),  # not the 478 points of the scheme
        ("landmarks.npy", lambda a: np.zeros((4, 478, 3), np.float32)),
        ("landmarks.npy", lambda a: (a["landmarks"] * 100).astype(np.int64)),
        ("pose.npy", lambda a: a["pose"][:, :2]),
        ("pose.npy", lambda a: a["pose"][:3]),
        ("eyes.npy", lambda a: a["eyes"][:, 0]),
    ],
)
def test_clip_arrays_of_the_wrong_shape_are_refused_when_opened(tmp_path: Path, file: str, make: Callable) -> None:
    """Every clip's files are checked when the dataset is opened (a bad test clip must not wait for the evaluation
    after training), and again when a clip is loaded (files can change after the dataset was opened)."""
    root = _written(tmp_path)
    opened = fmt.Dataset(root)
    path = _replace_array(root, file, make(_arrays(4)))
    for attempt in (lambda: fmt.Dataset(root), lambda: opened.load_clip("amy/c0")):
        with pytest.raises(UserError) as info:
            attempt()
        assert str(path) in str(info.value) and "expected shape" in str(info.value)
    assert opened.load_clip("amy/c1").frames.shape == (4, 16, 16, 3)  # the other clip still reads


def test_stereo_or_unreadable_or_missing_clip_audio_is_refused_naming_the_file(tmp_path: Path) -> None:
    import soundfile as sf

    root = _written(tmp_path)
    opened = fmt.Dataset(root)
    wav = root / "clips" / "amy" / "c0" / "audio.wav"
    sf.write(wav, np.zeros((2560, 2), np.float32), 16000)
    for attempt in (lambda: fmt.Dataset(root), lambda: opened.load_clip("amy/c0")):
        with pytest.raises(UserError, match="mono") as info:
            attempt()
        assert str(wav) in str(info.value)
    wav.write_bytes(b"not a wav")
    with pytest.raises(UserError, match="cannot read clip file") as info:
        fmt.Dataset(root)
    assert str(wav) in str(info.value)
    wav.unlink()
    with pytest.raises(UserError, match="cannot read clip file") as info:
        opened.load_clip("amy/c0")
    assert str(wav) in str(info.value)


def test_reader_accepts_what_the_writer_writes_and_float64_side_arrays(tmp_path: Path) -> None:
    """The checks refuse only what the format rules out: float64 landmarks/pose/eyes are still floats."""
    root = _written(tmp_path)
    _replace_array(root, "pose.npy", _arrays(4)["pose"].astype(np.float64))
    clip = fmt.Dataset(root).load_clip("amy/c0")
    assert clip.pose.dtype == np.float64 and clip.frames.dtype == np.uint8 and clip.landmarks.shape == (4, 478, 2)
