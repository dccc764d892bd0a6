"""The apb2face dataset format (version 1): what every data source writes and what training reads.

Layout (see docs/dataset-format.md for the full specification)::

    DATASET/
      dataset.json                      metadata, identities, clips, splits (written last, atomically)
      clips/<identity>/<clip>/
        frames.npy                      uint8 (N, S, S, 3) RGB face crops, memory-mappable
        audio.wav                       mono PCM16 at `sample_rate` Hz
        landmarks.npy                   float32 (N, L, 2) x, y in [0, 1] of the crop (x right, y down)
        pose.npy                        float32 (N, 3) yaw, pitch, roll in degrees
        eyes.npy                        float32 (N, 2) left, right eye openness (1 open ... 0 closed)
        clip.json                       per-clip facts (identity, text, frames, fps, source)

Every file is written deterministically (no timestamps, no absolute paths): the same inputs give the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf

from apb2face.errors import UserError
from apb2face.io import atomic_path, read_json, write_json

FORMAT_NAME = "apb2face-dataset"
FORMAT_VERSION = 1
LANDMARK_SCHEME = "mediapipe-478"  # 468 face-mesh points + 10 iris points, mediapipe's index order
NUM_LANDMARKS = 478
POSE_CONVENTION = (
    "yaw, pitch, roll in degrees, head relative to the camera: yaw > 0 turns the face towards image right "
    "(the subject's left), pitch > 0 tilts the chin down, roll > 0 rotates the face clockwise in the image"
)
EYES_CONVENTION = "left, right = the subject's own left and right eye; 1 fully open, 0 closed"

T = TypeVar("T")


@dataclass(frozen=True)
class ClipRecord:
    """One clip (one sentence / one continuous shot) of one identity."""

    identity: str
    name: str
    num_frames: int
    text: str = ""

    @property
    def key(self) -> str:
        return f"{self.identity}/{self.name}"


@dataclass
class DatasetMeta:
    image_size: int
    sample_rate: int
    fps: float
    landmark_scheme: str = LANDMARK_SCHEME
    source: str = ""
    clips: list[ClipRecord] = field(default_factory=list)
    splits: dict[str, list[str]] = field(default_factory=dict)
    split_seed: int = 0
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    pose_convention: str = POSE_CONVENTION
    eyes_convention: str = EYES_CONVENTION

    @property
    def identities(self) -> list[str]:
        return sorted({c.identity for c in self.clips})

    def to_json(self) -> dict:
        d = asdict(self)
        d["identities"] = self.identities
        return d

    @classmethod
    def from_json(cls, d: object) -> DatasetMeta:
        """The metadata of a dataset.json, checked as the writer makes it; ValueError says what is wrong."""
        d = _object(d, "dataset.json")
        clips = [_clip_record(c, i) for i, c in enumerate(_list(_required(d, "clips"), "clips"))]
        keys = [c.key for c in clips]
        if len(set(keys)) != len(keys):
            raise ValueError(f"clip {next(k for k in keys if keys.count(k) > 1)!r} is listed twice")
        return cls(
            image_size=_positive_integer(_required(d, "image_size"), "image_size"),
            sample_rate=_positive_integer(_required(d, "sample_rate"), "sample_rate"),
            fps=_positive_number(_required(d, "fps"), "fps"),
            landmark_scheme=_string(d.get("landmark_scheme", LANDMARK_SCHEME), "landmark_scheme"),
            source=_string(d.get("source", ""), "source"),
            clips=clips,
            splits=_splits(d.get("splits", {}), set(keys)),
            split_seed=_integer(d.get("split_seed", 0), "split_seed"),
            format=_string(d.get("format", FORMAT_NAME), "format"),
            version=_integer(d.get("version", FORMAT_VERSION), "version"),
            pose_convention=_string(d.get("pose_convention", POSE_CONVENTION), "pose_convention"),
            eyes_convention=_string(d.get("eyes_convention", EYES_CONVENTION), "eyes_convention"),
        )


@dataclass
class Clip:
    """The arrays of one clip. `frames` is a read-only memory map: slicing it reads only what is used."""

    record: ClipRecord
    frames: np.ndarray  # (N, S, S, 3) uint8 RGB
    audio: np.ndarray  # (samples,) float32 in [-1, 1]
    sample_rate: int
    fps: float
    landmarks: np.ndarray  # (N, L, 2) float32 in [0, 1]
    pose: np.ndarray  # (N, 3) float32 degrees (yaw, pitch, roll)
    eyes: np.ndarray  # (N, 2) float32 openness (left, right)


def split_by_clip(keys: list[str], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Split clip keys into train/test per identity, seeded; never at frame level (near-duplicate frames would leak).

    Each identity with at least two clips keeps at least one clip in each split.
    """
    by_identity: dict[str, list[str]] = {}
    for key in sorted(keys):
        by_identity.setdefault(key.split("/")[0], []).append(key)
    rng = random.Random(seed)
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for identity in sorted(by_identity):
        clips = by_identity[identity]
        rng.shuffle(clips)
        n_test = 0 if len(clips) < 2 else min(len(clips) - 1, max(1, round(test_fraction * len(clips))))
        splits["test"] += clips[:n_test]
        splits["train"] += clips[n_test:]
    return {k: sorted(v) for k, v in splits.items()}


class DatasetWriter:
    """Writes a dataset clip by clip; `finish()` writes dataset.json (the dataset is valid only once it exists)."""

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: int,
        sample_rate: int,
        fps: float,
        source: str = "",
        landmark_scheme: str = LANDMARK_SCHEME,
    ) -> None:
        self.root = Path(root)
        self.meta = DatasetMeta(
            image_size=image_size, sample_rate=sample_rate, fps=fps, source=source, landmark_scheme=landmark_scheme
        )
        self.root.mkdir(parents=True, exist_ok=True)

    def add_clip(
        self,
        identity: str,
        name: str,
        *,
        frames: np.ndarray,
        audio: np.ndarray,
        landmarks: np.ndarray,
        pose: np.ndarray,
        eyes: np.ndarray,
        text: str = "",
        extra: dict | None = None,
    ) -> ClipRecord:
        """Validate and write one clip. `audio` is float mono at the dataset rate; arrays are per frame."""
        check_name(identity, "identity")
        check_name(name, "clip")
        n = len(frames)
        s = self.meta.image_size
        _expect(frames, (n, s, s, 3), np.uint8, "frames")
        _expect(landmarks, (n, None, 2), None, "landmarks")
        _expect(pose, (n, 3), None, "pose")
        _expect(eyes, (n, 2), None, "eyes")
        if audio.ndim != 1:
            raise ValueError(f"audio must be mono (samples,), got shape {audio.shape}")
        record = ClipRecord(identity=identity, name=name, num_frames=n, text=text)
        clip_dir = self.root / "clips" / identity / name
        clip_dir.mkdir(parents=True, exist_ok=True)
        _save_npy(clip_dir / "frames.npy", np.ascontiguousarray(frames))
        _save_npy(clip_dir / "landmarks.npy", landmarks.astype(np.float32))
        _save_npy(clip_dir / "pose.npy", pose.astype(np.float32))
        _save_npy(clip_dir / "eyes.npy", eyes.astype(np.float32))
        with atomic_path(clip_dir / "audio.wav") as tmp:
            sf.write(
                tmp,
                np.clip(audio, -1.0, 1.0).astype(np.float32),
                self.meta.sample_rate,
                subtype="PCM_16",
                format="WAV",
            )
        write_json(clip_dir / "clip.json", {**asdict(record), "fps": self.meta.fps, **(extra or {})})
        self.meta.clips = [c for c in self.meta.clips if c.key != record.key] + [record]
        return record

    def register(self, record: ClipRecord) -> None:
        """Record a clip whose files another writer (e.g. a worker process) wrote under the same root."""
        if not (self.root / "clips" / record.identity / record.name / "clip.json").is_file():
            raise ValueError(f"clip {record.key} has no files under {self.root}")
        self.meta.clips = [c for c in self.meta.clips if c.key != record.key] + [record]

    def finish(
        self, *, test_fraction: float = 0.2, seed: int = 0, splits: dict[str, list[str]] | None = None
    ) -> DatasetMeta:
        """Write dataset.json with a seeded by-clip split (or the given one)."""
        self.meta.clips = sorted(self.meta.clips, key=lambda c: c.key)
        keys = [c.key for c in self.meta.clips]
        self.meta.splits = splits if splits is not None else split_by_clip(keys, test_fraction, seed)
        self.meta.split_seed = seed
        write_json(self.root / "dataset.json", self.meta.to_json())
        return self.meta


class Dataset:
    """Read access to a dataset written by `DatasetWriter`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            raise UserError("not an apb2face dataset (no dataset.json)", self.root)
        raw = read_json(meta_path)
        if not isinstance(raw, dict):
            raise UserError(f"expected a JSON object, got {_describe(raw)}", meta_path)
        if raw.get("format") != FORMAT_NAME:
            raise UserError(f"not an apb2face dataset (format={raw.get('format')!r})", meta_path)
        if raw.get("version") != FORMAT_VERSION or isinstance(raw.get("version"), bool):
            raise UserError(
                f"dataset format version {raw.get('version')!r} is not supported (expected {FORMAT_VERSION})",
                meta_path,
            )
        try:
            self.meta = DatasetMeta.from_json(raw)
        except ValueError as exc:
            raise UserError(str(exc), meta_path) from None
        self._by_key = {c.key: c for c in self.meta.clips}
        for record in self.meta.clips:  # every clip now, so that a bad one stops a run before it starts
            self._check_clip_files(record)

    @property
    def identities(self) -> list[str]:
        return self.meta.identities

    def clips(self, split: str | None = None, identity: str | None = None) -> list[ClipRecord]:
        """Clips of a split ("train", "test"; None = all), optionally of one identity, in a stable order."""
        if split is None:
            records = list(self.meta.clips)
        else:
            if split not in self.meta.splits:
                raise UserError(f"dataset has no split {split!r} (has {sorted(self.meta.splits)})", self.root)
            records = [self._by_key[k] for k in self.meta.splits[split]]
        return [c for c in records if identity is None or c.identity == identity]

    def clip_dir(self, record: ClipRecord | str) -> Path:
        key = record if isinstance(record, str) else record.key
        return self.root / "clips" / key

    def load_clip(self, record: ClipRecord | str) -> Clip:
        """The clip's arrays (frames memory-mapped), checked as when the dataset was opened."""
        if isinstance(record, str):
            record = self._by_key[record]
        d = self.clip_dir(record)
        arrays = {
            file: _load_checked(d / file, shape, dtype, mmap=file == "frames.npy")
            for file, (shape, dtype) in self._expected_arrays(record).items()
        }
        audio, sr = _read_clip_file(d / "audio.wav", lambda p: sf.read(p, dtype="float32", always_2d=False))
        if audio.ndim != 1:
            raise UserError(f"audio must be mono, got {audio.shape[1]} channels", d / "audio.wav")
        return Clip(
            record=record,
            frames=arrays["frames.npy"],
            audio=audio,
            sample_rate=sr,
            fps=self.meta.fps,
            landmarks=arrays["landmarks.npy"],
            pose=arrays["pose.npy"],
            eyes=arrays["eyes.npy"],
        )

    def _expected_arrays(self, record: ClipRecord) -> dict[str, tuple[tuple, type[np.generic]]]:
        """File -> (shape, dtype) of a clip's arrays as the writer writes them (None: any size)."""
        n, s = record.num_frames, self.meta.image_size
        points = NUM_LANDMARKS if self.meta.landmark_scheme == LANDMARK_SCHEME else None  # others: any count
        return {
            "frames.npy": ((n, s, s, 3), np.uint8),
            "landmarks.npy": ((n, points, 2), np.floating),
            "pose.npy": ((n, 3), np.floating),
            "eyes.npy": ((n, 2), np.floating),
        }

    def _check_clip_files(self, record: ClipRecord) -> None:
        """Read the headers of a clip's files (not their data) and refuse what does not match the format."""
        d = self.clip_dir(record)
        for file, (shape, dtype) in self._expected_arrays(record).items():
            _check_npy_header(d / file, shape, dtype)
        channels = _read_clip_file(d / "audio.wav", sf.info).channels
        if channels != 1:
            raise UserError(f"audio must be mono, got {channels} channels", d / "audio.wav")


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array, allow_pickle=False)


def check_name(name: str, what: str) -> None:
    """The one rule for identity and clip names, applied when a dataset is written and when it is read: a name is
    one path component inside the dataset (`../x`, `/x`, hidden or empty names would read or write elsewhere)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"invalid {what} name {name!r}: must be one non-empty path component (no '/' or '\\')")
    if name.startswith(".") or name != name.strip():
        raise ValueError(f"invalid {what} name {name!r}: no leading '.', no surrounding spaces")


def _describe(value: object) -> str:
    """A JSON value's kind and (shortened) text, for messages."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return f"{kinds.get(type(value), 'a number')} {str(value)[:40]!r}" if value is not None else "null"


def _required(d: dict, key: str, where: str = "") -> object:
    if key not in d:
        raise ValueError(f"missing key {key!r}" + (f" in {where}" if where else ""))
    return d[key]


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):  # JSON true/false are not numbers
        raise ValueError(f"{what} must be an integer, got {_describe(value)}")
    return value


def _positive_integer(value: object, what: str) -> int:
    number = _integer(value, what)
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {number}")
    return number


def _positive_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {_describe(value)}")
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{what} must be positive, got {value}")
    return float(value)


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {_describe(value)}")
    return value


def _object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, got {_describe(value)}")
    return value


def _list(value: object, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {_describe(value)}")
    return value


def _clip_record(entry: object, index: int) -> ClipRecord:
    """One entry of dataset.json's `clips`, with names checked as the writer checks them."""
    where = f"clips[{index}]"
    entry = _object(entry, where)
    identity = _required(entry, "identity", where)
    name = _required(entry, "name", where)
    check_name(identity, "identity")
    check_name(name, "clip")
    num_frames = _integer(_required(entry, "num_frames", where), f"{where}.num_frames")
    if num_frames < 0:
        raise ValueError(f"{where}.num_frames must not be negative, got {num_frames}")
    return ClipRecord(identity, name, num_frames, _string(entry.get("text", ""), f"{where}.text"))


def _splits(value: object, known: set[str]) -> dict[str, list[str]]:
    """dataset.json's `splits`: split name -> clip keys, every key one of the dataset's clips."""
    splits = _object(value, "splits")
    for split, keys in splits.items():
        for key in _list(keys, f"splits[{split!r}]"):
            if key not in known:
                raise ValueError(f"split {split!r} names clip {key!r}, which is not among the dataset's clips")
    return {split: list(keys) for split, keys in splits.items()}


def _read_clip_file(path: Path, read: Callable[[Path], T]) -> T:
    """`read(path)`, with a file that cannot be read turned into a UserError naming it."""
    try:
        return read(path)
    except (OSError, ValueError, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
        raise UserError(f"cannot read clip file ({exc})", path) from None


def _load_checked(path: Path, shape: tuple, dtype: type[np.generic], mmap: bool = False) -> np.ndarray:
    """An .npy array of the expected shape (None = any size) and dtype (np.floating: any float); else a UserError
    naming the file. With `mmap` the data stays on disk until it is used."""
    array = _read_clip_file(path, lambda p: np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False))
    _check_array(path, array.shape, array.dtype, shape, dtype)
    return array


def _check_npy_header(path: Path, shape: tuple, dtype: type[np.generic]) -> None:
    """`_load_checked` reading only the file's header (a fraction of a millisecond per file)."""
    got_shape, got_dtype = _read_clip_file(path, _npy_header)
    _check_array(path, got_shape, got_dtype, shape, dtype)


def _npy_header(path: Path) -> tuple[tuple, np.dtype]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            got_shape, _, got_dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            got_shape, _, got_dtype = np.lib.format.read_array_header_2_0(f)
        else:  # a rarer header layout: let numpy read it (the data stays on disk)
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            got_shape, got_dtype = array.shape, array.dtype
    return got_shape, got_dtype


def _check_array(path: Path, got_shape: tuple, got_dtype: np.dtype, shape: tuple, dtype: type[np.generic]) -> None:
    fits = len(got_shape) == len(shape) and all(want is None or want == got for want, got in zip(shape, got_shape))
    if not fits or not np.issubdtype(got_dtype, dtype):
        wanted = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        kind = "float" if dtype is np.floating else np.dtype(dtype).name
        raise UserError(f"expected shape {wanted} of {kind}, got {tuple(got_shape)} {got_dtype}", path)


def _expect(array: np.ndarray, shape: tuple, dtype: type | None, what: str) -> None:
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok or (dtype is not None and array.dtype != dtype):
        raise ValueError(f"{what}: expected shape {shape} dtype {dtype}, got {array.shape} {array.dtype}")
