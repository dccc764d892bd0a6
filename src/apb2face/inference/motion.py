"""Head pose and blink signals for generation: a seeded natural-motion generator and loaders for user-given motion.

Signals follow the dataset conventions (docs/dataset-format.md): pose (N, 3) = yaw, pitch, roll in degrees
(`apb2face.data.face.rotation_matrix`), eyes (N, 2) = left, right openness, 1 open ... 0 closed, one row per video
frame.

* `NaturalMotion` produces motion frame by frame (the real-time path pulls a few frames at a time; offline generation
  takes them all at once): a blink every 2-6 s lasting 150-250 ms with both eyes, and a slow, smooth head sway of a
  few degrees made of incommensurate sinusoids, so the face never freezes and never jerks.
* `load_pose` / `load_blink` read CSV or .npy files (one row per frame at 25 fps) and fit them to the audio length.
* `motion_from_video` extracts pose and blink from a driving video with the same detector and measures `prepare` uses.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from apb2face.errors import UserError

log = logging.getLogger(__name__)

FILE_FPS = 25.0  # the rate of rows in --pose / --blink files
BLINK_INTERVAL_S = (2.0, 6.0)
FIRST_BLINK_S = (0.8, 3.0)
BLINK_DURATION_S = (0.15, 0.25)
BLINK_CLOSING_FRACTION = 0.4  # lids close faster than they open
SWAY_AMPLITUDE_DEG = (3.0, 2.0, 1.5)  # yaw, pitch, roll: peak deviation from the centre pose
SWAY_FREQUENCY_HZ = (0.04, 0.3)
SWAY_COMPONENTS = 3
MAX_POSE_DEG = 90.0
# natural motion is reproducible unless a caller asks otherwise (seed=None): the Python API, `generate` and `stream`
# share this default, so the same inputs give the same video on every path
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Motion:
    """Per-frame control signals: pose (N, 3) degrees yaw/pitch/roll and eyes (N, 2) openness left/right."""

    pose: np.ndarray
    eyes: np.ndarray

    def __len__(self) -> int:
        return len(self.pose)


class MotionSource(Protocol):
    """Anything that hands out per-frame motion in order: `take(n)` returns the next n frames (NaturalMotion, the
    streaming session's supplied rows, a scene face's tracked or natural motion)."""

    def take(self, count: int) -> Motion: ...


class NaturalMotion:
    """Seeded idle motion, generated incrementally: `take(n)` returns the next n frames.

    The same seed gives the same motion whether it is taken in one call or in many small ones.
    """

    def __init__(
        self,
        fps: float = 25.0,
        seed: int | None = DEFAULT_SEED,
        centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
        open_level: float = 1.0,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.fps = float(fps)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.open_level = float(open_level)
        self._rng = np.random.default_rng(seed)
        self._frame = 0
        # sway: per axis, SWAY_COMPONENTS sinusoids whose amplitudes add up to the axis' peak, so |sway| <= peak
        self._freq = self._rng.uniform(*SWAY_FREQUENCY_HZ, size=(3, SWAY_COMPONENTS))
        self._phase = self._rng.uniform(0.0, 2 * math.pi, size=(3, SWAY_COMPONENTS))
        weights = self._rng.uniform(0.5, 1.0, size=(3, SWAY_COMPONENTS))
        self._amp = weights / weights.sum(axis=1, keepdims=True) * np.asarray(SWAY_AMPLITUDE_DEG)[:, None]
        # blink schedule, extended lazily: (time of full closure in s, duration in s)
        self._blinks: list[tuple[float, float]] = []
        self._next_blink = self._snap(self._rng.uniform(*FIRST_BLINK_S))

    def _snap(self, t: float) -> float:
        # full closure on a frame time, so every blink shows at least one closed frame
        return round(t * self.fps) / self.fps

    def _schedule_until(self, t_end: float) -> None:
        while self._next_blink <= t_end + BLINK_DURATION_S[1]:
            self._blinks.append((self._next_blink, float(self._rng.uniform(*BLINK_DURATION_S))))
            self._next_blink = self._snap(self._next_blink + self._rng.uniform(*BLINK_INTERVAL_S))

    def take(self, count: int) -> Motion:
        t = (self._frame + np.arange(count)) / self.fps
        self._frame += count
        return Motion(pose=self._pose_at(t), eyes=self._eyes_at(t))

    def _pose_at(self, t: np.ndarray) -> np.ndarray:
        angles = 2 * math.pi * self._freq[None] * t[:, None, None] + self._phase[None]  # (N, 3, K)
        sway = (self._amp[None] * np.sin(angles)).sum(axis=2)
        return (self.centre[None] + sway).astype(np.float32)

    def _eyes_at(self, t: np.ndarray) -> np.ndarray:
        if len(t) == 0:
            return np.zeros((0, 2), np.float32)
        self._schedule_until(float(t[-1]))
        self._blinks = [b for b in self._blinks if b[0] + b[1] >= t[0]]  # long streams: drop finished blinks
        closure = np.zeros(len(t))
        for t_closed, duration in self._blinks:
            closing, opening = BLINK_CLOSING_FRACTION * duration, (1 - BLINK_CLOSING_FRACTION) * duration
            dt = t - t_closed
            half = np.where(dt < 0, closing, opening)
            inside = np.abs(dt) < half
            closure = np.maximum(closure, np.where(inside, np.cos(0.5 * math.pi * np.clip(dt / half, -1, 1)) ** 2, 0))
        openness = self.open_level * (1.0 - closure)
        return np.repeat(openness[:, None], 2, axis=1).astype(np.float32)


def natural_motion(
    num_frames: int,
    fps: float = 25.0,
    seed: int | None = DEFAULT_SEED,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
    open_level: float = 1.0,
) -> Motion:
    """`num_frames` of natural idle motion (see `NaturalMotion`)."""
    return NaturalMotion(fps, seed, centre, open_level).take(num_frames)


def blink_events(eyes: np.ndarray, fps: float, threshold: float = 0.5) -> list[tuple[float, float]]:
    """(start s, duration s) of each run of frames where both eyes' openness is below `threshold`."""
    closed = (np.asarray(eyes) < threshold).all(axis=1)
    events = []
    i = 0
    while i < len(closed):
        if closed[i]:
            j = i
            while j < len(closed) and closed[j]:
                j += 1
            events.append((i / fps, (j - i) / fps))
            i = j
        else:
            i += 1
    return events


# ---------------------------------------------------------------------------------------------- user-given motion


def fit_length(
    signal: np.ndarray, num_frames: int, fps: float, source_fps: float = FILE_FPS, path: str | Path | None = None
) -> np.ndarray:
    """Resample a (M, C) signal from `source_fps` to `fps` (linear) and pad (holding the last row) or cut it to
    `num_frames` rows."""
    signal = np.asarray(signal, dtype=np.float64)
    if abs(source_fps - fps) > 1e-6 and len(signal) > 1:
        src_t = np.arange(len(signal)) / source_fps
        dst_t = np.arange(int(math.floor(src_t[-1] * fps + 1e-6)) + 1) / fps
        signal = np.stack([np.interp(dst_t, src_t, signal[:, c]) for c in range(signal.shape[1])], axis=1)
    if len(signal) != num_frames:
        what = f"{path}: " if path else ""
        if len(signal) < num_frames - 1 or len(signal) > num_frames + 1:
            log.warning(
                "%s%d rows at %g fps for %d video frames: %s",
                what,
                len(signal),
                fps,
                num_frames,
                "holding the last row" if len(signal) < num_frames else "ignoring the extra rows",
            )
        if len(signal) < num_frames:
            signal = np.concatenate([signal, np.repeat(signal[-1:], num_frames - len(signal), axis=0)])
        signal = signal[:num_frames]
    return signal.astype(np.float32)


def read_table(path: str | Path, columns: int, what: str) -> np.ndarray:
    """A (N, columns) float table from .npy or a text file (comma/whitespace separated, header, # comments)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    if path.suffix.lower() == ".npy":
        try:
            table = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"cannot read .npy ({str(exc).splitlines()[0][:120]})", path) from None
        if table.dtype.kind not in "iuf":
            raise UserError(f"{what} array must be numeric, got dtype {table.dtype}", path)
        if table.ndim == 1 and columns == 1:
            table = table[:, None]
        if table.ndim != 2 or table.shape[1] != columns:
            raise UserError(f"{what} array must have shape (frames, {columns}), got {table.shape}", path)
    else:
        table = _parse_text_table(path, columns, what)
    if len(table) == 0:
        raise UserError(f"{what} file has no rows", path)
    if not np.isfinite(table).all():
        raise UserError(f"{what} file contains NaN or infinite values", path)
    return table.astype(np.float64)


def _parse_text_table(path: Path, columns: int, what: str) -> np.ndarray:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"not a text table of {what} (CSV or .npy expected)", path) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in line.replace(",", " ").replace(";", " ").split()]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not rows:  # a header line
                continue
            raise UserError(f"line {number}: not a number in {line!r}", path) from None
        if len(values) != columns:
            raise UserError(f"line {number}: expected {columns} values ({what}), got {len(values)}", path)
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, columns)


def load_pose(path: str | Path, num_frames: int, fps: float = 25.0) -> np.ndarray:
    """(num_frames, 3) yaw, pitch, roll degrees from a --pose file (rows at 25 fps)."""
    table = read_table(path, 3, "yaw,pitch,roll")
    if np.abs(table).max() > MAX_POSE_DEG:
        raise UserError(f"pose angles must be degrees within ±{MAX_POSE_DEG:g} (got {np.abs(table).max():.1f})", path)
    return fit_length(table, num_frames, fps, FILE_FPS, path)


def load_blink(path: str | Path, num_frames: int, fps: float = 25.0) -> np.ndarray:
    """(num_frames, 2) left, right eye openness in [0, 1] from a --blink file (rows at 25 fps)."""
    table = read_table(path, 2, "left,right eye openness")
    if table.min() < -0.01 or table.max() > 1.01:
        raise UserError(
            f"eye openness must lie in [0, 1] (1 open, 0 closed); got {table.min():.3g}..{table.max():.3g}", path
        )
    return np.clip(fit_length(table, num_frames, fps, FILE_FPS, path), 0.0, 1.0)


def motion_from_video(path: str | Path, num_frames: int, fps: float = 25.0) -> Motion:
    """Pose and blink of the face in a driving video, one row per output frame (resampled to `fps` by timestamp,
    padded or cut to `num_frames`). Frames where no face is found take values interpolated from their neighbours."""
    from tqdm import tqdm

    from apb2face.data.face import FaceMesh, FaceSettings, estimate_pose, eye_aspect_ratios
    from apb2face.data.video import iter_frames, probe, resample_timestamps
    from apb2face.inference.faces import detect_video_face

    cfg = FaceSettings()  # measured as `prepare` measures dataset frames

    info = probe(path)
    times: list[float] = []
    pose_rows: list[tuple[float, float, float]] = []
    ear_rows: list[tuple[float, float]] = []
    found: list[bool] = []
    expected = info.num_frames or int(info.duration * info.fps) or None
    with FaceMesh(video=True, min_confidence=cfg.min_confidence) as mesh:
        for t, frame in tqdm(iter_frames(path), total=expected, desc="driving video", unit="frame", leave=False):
            points = detect_video_face(mesh, frame, cfg)
            times.append(t)
            found.append(points is not None)
            if points is None:
                pose_rows.append((0.0, 0.0, 0.0))
                ear_rows.append((0.0, 0.0))
            else:
                pose_rows.append(estimate_pose(points, frame.shape[:2]))
                ear_rows.append(eye_aspect_ratios(points))
    if not times:
        raise UserError("driving video has no frames", path)
    mask = np.asarray(found)
    if not mask.any():
        raise UserError("no face found in any frame of the driving video", path)
    if not mask.all():
        log.warning(
            "%s: no face in %d of %d frames; interpolating their pose and blink", path, (~mask).sum(), len(mask)
        )
    pose = _fill_missing(np.asarray(pose_rows, np.float64), mask)
    eyes = ears_to_openness(_fill_missing(np.asarray(ear_rows, np.float64), mask), cfg.eye_percentile)
    index = resample_timestamps(times, fps)
    return Motion(
        pose=fit_length(pose[index], num_frames, fps, fps, path),
        eyes=np.clip(fit_length(eyes[index], num_frames, fps, fps, path), 0.0, 1.0),
    )


def _fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    x = np.arange(len(values))
    return np.stack([np.interp(x, x[found], values[found, c]) for c in range(values.shape[1])], axis=1)


def ears_to_openness(ears: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """Eye aspect ratios (N, 2) of one continuous clip -> openness in [0, 1] as `prepare` computes it: each eye's EAR
    against its open level (this percentile of the clip's EAR, since eyes are open most of the time), through
    `face.eye_openness`."""
    from apb2face.data.face import eye_openness

    return eye_openness(ears, np.percentile(ears, percentile, axis=0))
