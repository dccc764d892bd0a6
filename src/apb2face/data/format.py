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
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    def from_json(cls, d: dict) -> DatasetMeta:
        d = dict(d)
        d.pop("identities", None)
        d["clips"] = [ClipRecord(**c) for c in d.get("clips", [])]
        return cls(**d)


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
        _check_name(identity, "identity")
        _check_name(name, "clip")
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
        if raw.get("format") != FORMAT_NAME:
            raise UserError(f"not an apb2face dataset (format={raw.get('format')!r})", meta_path)
        if raw.get("version") != FORMAT_VERSION:
            raise UserError(
                f"dataset format version {raw.get('version')} is not supported (expected {FORMAT_VERSION})", meta_path
            )
        self.meta = DatasetMeta.from_json(raw)
        self._by_key = {c.key: c for c in self.meta.clips}

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
        if isinstance(record, str):
            record = self._by_key[record]
        d = self.clip_dir(record)
        try:
            audio, sr = sf.read(d / "audio.wav", dtype="float32", always_2d=False)
            return Clip(
                record=record,
                frames=np.load(d / "frames.npy", mmap_mode="r"),
                audio=audio,
                sample_rate=sr,
                fps=self.meta.fps,
                landmarks=np.load(d / "landmarks.npy"),
                pose=np.load(d / "pose.npy"),
                eyes=np.load(d / "eyes.npy"),
            )
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read clip files ({exc})", d) from None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array, allow_pickle=False)


def _check_name(name: str, what: str) -> None:
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"invalid {what} name {name!r}: no '/', no leading '.', no surrounding spaces")


def _expect(array: np.ndarray, shape: tuple, dtype: type | None, what: str) -> None:
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok or (dtype is not None and array.dtype != dtype):
        raise ValueError(f"{what}: expected shape {shape} dtype {dtype}, got {array.shape} {array.dtype}")
