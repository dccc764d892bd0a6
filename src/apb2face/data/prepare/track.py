"""Face tracking and cropping, in one pass over the decoded frames.

Per frame: detect on a downscaled copy (mediapipe face mesh, video mode), landmarks mapped back to the full-resolution
frame; scene-cut score from a 64x36 thumbnail; raw crop box from the landmarks. Tracks are runs of frames with a
face, broken by a missing face, a scene cut or a face-size/position jump. The crop box is smoothed within a track by
a zero-phase Gaussian (centre and side separately, bounded look-ahead, so only `lookahead` full frames are ever
held); the crop is cut from the full-resolution frame, padded at borders, and pose, eye aspect ratios and mouth
opening are measured.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.face_tracks import distinct, match_to_tracks
from apb2face.data.prepare.jobs import PrepareConfig

PROGRESS_EVERY = 25  # frames between progress reports


@dataclass
class Track:
    """Per output frame (tick) measurements of one video, before clips are cut."""

    n: int
    face: np.ndarray  # (n,) bool
    landmarks: np.ndarray  # (n, 478, 3) float32 source pixels (NaN where no face)
    boxes: np.ndarray  # (n, 3) smoothed crop box cx, cy, side (NaN where no face)
    raw_side: np.ndarray  # (n,) unsmoothed box side
    segment: np.ndarray  # (n,) track id (-1 where no face)
    row: np.ndarray  # (n,) row of the crop in the crop store (-1 where no face)
    pose: np.ndarray  # (n, 3) yaw, pitch, roll (calibrated)
    ear: np.ndarray  # (n, 2) left, right
    mouth: np.ndarray  # (n,)
    padded: np.ndarray  # (n,) bool: crop reaches outside the frame
    cuts: int
    jumps: int
    frame_size: tuple[int, int]  # (h, w) of the decoded (rotated) frames


class CropStore:
    """Crops appended to a raw file as they are made, read back by row through a memory map."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size, self.count = path, size, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "wb")  # noqa: SIM115 (closed in close())

    def append(self, crop: np.ndarray) -> int:
        self._f.write(np.ascontiguousarray(crop, dtype=np.uint8).tobytes())
        self.count += 1
        return self.count - 1

    def close(self) -> np.ndarray:
        self._f.close()
        if self.count == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, self.size, self.size, 3))

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Measured:
    """What a finalised frame yields: its crop's row in the store, the smoothed box and the face measurements."""

    row: int
    box: tuple[float, float, float]
    padded: bool
    pose: tuple[float, float, float]
    ear: tuple[float, float]
    mouth: float


def analyse(
    frames: Iterable[np.ndarray],
    cfg: PrepareConfig,
    store: CropStore,
    max_frames: int,
    progress: Callable[[int], None],
) -> Track:
    """Detect, track, smooth and crop every frame in one pass, holding at most `lookahead` full frames."""
    tracker = _FaceTracker(cfg, store)
    with face.FaceMesh(video=True, min_confidence=cfg.min_confidence) as mesh:
        for k, image in enumerate(frames):
            if k >= max_frames:
                break
            tracker.observe(mesh, image)
            tracker.finalise_ready()
            if (k + 1) % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        tracker.finalise_ready(flush=True)
    progress(tracker.n % PROGRESS_EVERY)
    return tracker.track()


def gaussian_kernel(sigma: float, half: int) -> np.ndarray:
    """Unnormalised Gaussian weights at offsets -half..half (a sigma of 0 gives a single tap)."""
    return np.exp(-0.5 * (np.arange(-half, half + 1) / max(sigma, 1e-6)) ** 2)


def detect_full_resolution(
    mesh: face.FaceMesh, image: np.ndarray, detect_size: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """Landmarks found on a copy scaled to at most `detect_size` (long side), mapped back to `image` pixels, and the
    scaled copy itself."""
    small = _scaled_copy(image, detect_size)
    lm = mesh.detect(small)
    return (None if lm is None else _to_full_resolution(lm, image, small)), small


def detect_all_full_resolution(
    mesh: face.FaceMesh, image: np.ndarray, detect_size: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """`detect_full_resolution` for every face the mesh finds (a mesh made with max_faces > 1)."""
    small = _scaled_copy(image, detect_size)
    return [_to_full_resolution(lm, image, small) for lm in mesh.detect_all(small)], small


def _scaled_copy(image: np.ndarray, detect_size: int) -> np.ndarray:
    ih, iw = image.shape[:2]
    scale = min(1.0, detect_size / max(ih, iw))
    if scale < 1.0:
        return cv2.resize(image, (max(1, round(iw * scale)), max(1, round(ih * scale))), interpolation=cv2.INTER_AREA)
    return image


def _to_full_resolution(lm: np.ndarray, image: np.ndarray, small: np.ndarray) -> np.ndarray:
    sx, sy = image.shape[1] / small.shape[1], image.shape[0] / small.shape[0]
    lm[:, 0] *= sx
    lm[:, 1] *= sy
    lm[:, 2] *= sx
    return lm


def analyse_people(
    frames: Iterable[np.ndarray],
    cfg: PrepareConfig,
    work: Path,
    stores: list[CropStore],
    max_frames: int,
    progress: Callable[[int], None],
) -> list[Track]:
    """`analyse` for every face of a scene with several people, in one pass: each frame's faces (up to
    cfg.max_people) join the track whose last box is nearest (data/face_tracks.py), a face near none starts a new
    one. Each track has its own crop store under `work` (appended to `stores`, for the caller to discard)."""
    trackers: list[_FaceTracker] = []
    last: list[tuple[float, float, float] | None] = []
    scene_cut = _SceneCuts(cfg.scene_cut)
    with face.FaceMesh(video=True, min_confidence=cfg.min_confidence, max_faces=cfg.max_people) as mesh:
        for k, image in enumerate(frames):
            if k >= max_frames:
                break
            found, small = detect_all_full_resolution(mesh, image, cfg.detect_size)
            found = distinct([lm for lm in found if face.inter_ocular(lm) >= cfg.min_face], cfg.crop_scale)
            cut = scene_cut(small)
            boxes = [face.crop_box_from_landmarks(lm, cfg.crop_scale) for lm in found]
            given = match_to_tracks(last, boxes)
            for t, tracker in enumerate(trackers):
                f = given.get(t)
                tracker.add(None if f is None else found[f], cut, image)
                if f is not None:
                    last[t] = (boxes[f].cx, boxes[f].cy, boxes[f].side)
                tracker.finalise_ready()
            for f in sorted(set(range(len(found))) - set(given.values())):
                stores.append(CropStore(work / f"face{len(trackers)}.u8", cfg.size))
                tracker = _FaceTracker(cfg, stores[-1])
                for _ in range(k):
                    tracker.add(None, False, image)
                tracker.add(found[f], cut, image)
                trackers.append(tracker)
                last.append((boxes[f].cx, boxes[f].cy, boxes[f].side))
            if (k + 1) % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        for tracker in trackers:
            tracker.finalise_ready(flush=True)
    progress((trackers[0].n if trackers else 0) % PROGRESS_EVERY)
    return [tracker.track() for tracker in trackers]


class _SceneCuts:
    """Says whether a frame starts a new shot: its 64x36 grey thumbnail differs much from the previous one's."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None

    def __call__(self, image: np.ndarray) -> bool:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.int16)
        cut = self._prev is not None and float(np.abs(thumb - self._prev).mean()) > self.threshold
        self._prev = thumb
        return cut


class _FaceTracker:
    """The state of one pass: per-frame landmarks, raw boxes and track ids, and the full frames still waiting for
    their look-ahead before they can be smoothed, cropped and measured."""

    def __init__(self, cfg: PrepareConfig, store: CropStore) -> None:
        self.cfg, self.store = cfg, store
        self.half = int(math.ceil(3 * max(cfg.smooth_centre, cfg.smooth_side, 0.0)))  # look-ahead in frames
        self.k_centre = gaussian_kernel(cfg.smooth_centre, self.half)
        self.k_side = gaussian_kernel(cfg.smooth_side, self.half)
        self.landmarks: list[np.ndarray | None] = []
        self.raw: list[np.ndarray] = []  # (3,) raw box per tick (NaN if none)
        self.segment: list[int] = []
        self.pending: deque[tuple[int, np.ndarray]] = deque()  # (tick, full frame) not yet cropped
        self.measured: dict[int, _Measured] = {}
        self.pose_of = face.PoseEstimator()  # warm-started from frame to frame
        self.scene_cut = _SceneCuts(cfg.scene_cut)
        self.cuts = self.jumps = 0
        self.track_id = -1
        self.frame_size = (0, 0)

    @property
    def n(self) -> int:
        return len(self.segment)

    def observe(self, mesh: face.FaceMesh, image: np.ndarray) -> None:
        """Detect the face in the next frame and extend the current track, or start a new one, or mark no face."""
        lm, small = detect_full_resolution(mesh, image, self.cfg.detect_size)
        self.add(lm, self.scene_cut(small), image)

    def add(self, lm: np.ndarray | None, cut: bool, image: np.ndarray) -> None:
        """The next frame's face (None: none), whether a shot starts there, and the frame itself."""
        self.frame_size = image.shape[:2]
        if lm is not None and face.inter_ocular(lm) < self.cfg.min_face:
            lm = None
        if lm is None:
            self.landmarks.append(None)
            self.raw.append(np.full(3, np.nan))
            self.segment.append(-1)
            return
        b = face.crop_box_from_landmarks(lm, self.cfg.crop_scale)
        box = np.array([b.cx, b.cy, b.side])
        new_track = cut or not self.segment or self.segment[-1] < 0
        if not new_track:
            new_track = self._jumps_from(self.raw[-1], box)
            self.jumps += int(new_track)
        self.cuts += int(cut)
        if new_track:
            self.track_id += 1
        self.landmarks.append(lm)
        self.raw.append(box)
        self.segment.append(self.track_id)
        self.pending.append((self.n - 1, image))

    def _jumps_from(self, previous: np.ndarray, box: np.ndarray) -> bool:
        """The face changed size or position between two frames too much to be the same shot."""
        limit = self.cfg.face_jump
        return (
            abs(math.log(box[2] / previous[2])) > math.log1p(limit)
            or float(np.hypot(*(box[:2] - previous[:2]))) > limit * previous[2]
        )

    def finalise_ready(self, flush: bool = False) -> None:
        """Crop and measure the pending frames whose look-ahead is known: `half` ticks later, or their track has
        ended (all of them at the end of the video)."""
        last = self.n - 1
        while self.pending and (
            flush or self.pending[0][0] + self.half <= last or self.segment[-1] != self.segment[self.pending[0][0]]
        ):
            j, image = self.pending.popleft()
            self.measured[j] = self._finalise(j, image)

    def _smoothed_box(self, j: int) -> face.CropBox:
        """The crop box at tick j: raw boxes of the same track within +-half ticks, Gaussian-weighted."""
        h = self.half
        lo, hi = max(0, j - h), min(self.n, j + h + 1)
        same = np.array(self.segment[lo:hi]) == self.segment[j]
        window = np.nan_to_num(np.array(self.raw[lo:hi]))  # faceless neighbours have weight 0 (but 0 x NaN is NaN)
        wc = self.k_centre[lo - j + h : hi - j + h] * same
        ws = self.k_side[lo - j + h : hi - j + h] * same
        cx, cy = (wc[:, None] * window[:, :2]).sum(0) / wc.sum()
        side = float((ws * window[:, 2]).sum() / ws.sum())
        return face.CropBox(float(cx), float(cy), side)

    def _finalise(self, j: int, image: np.ndarray) -> _Measured:
        box = self._smoothed_box(j)
        ih, iw = image.shape[:2]
        half_side = box.side / 2
        lm = self.landmarks[j]
        return _Measured(
            row=self.store.append(face.crop_image(image, box, self.cfg.size)),
            box=(box.cx, box.cy, box.side),
            padded=box.cx - half_side < 0
            or box.cy - half_side < 0
            or box.cx + half_side > iw
            or box.cy + half_side > ih,
            pose=self.pose_of(lm),
            ear=face.eye_aspect_ratios(lm),
            mouth=face.mouth_opening(lm),
        )

    def track(self) -> Track:
        """The per-tick arrays of the whole pass (NaN / -1 where no face)."""
        n = self.n
        track = Track(
            n=n,
            face=np.array(self.segment, dtype=np.int64) >= 0 if n else np.zeros(0, bool),
            landmarks=np.full((n, face.canonical_face().shape[0], 3), np.nan, np.float32),
            boxes=np.full((n, 3), np.nan),
            raw_side=np.array([r[2] for r in self.raw]) if n else np.zeros(0),
            segment=np.array(self.segment, dtype=np.int64),
            row=np.full(n, -1, np.int64),
            pose=np.full((n, 3), np.nan),
            ear=np.full((n, 2), np.nan),
            mouth=np.full(n, np.nan),
            padded=np.zeros(n, bool),
            cuts=self.cuts,
            jumps=self.jumps,
            frame_size=self.frame_size,
        )
        for j, m in self.measured.items():
            track.landmarks[j] = self.landmarks[j]
            track.boxes[j] = m.box
            track.row[j] = m.row
            track.pose[j] = m.pose
            track.ear[j] = m.ear
            track.mouth[j] = m.mouth
            track.padded[j] = m.padded
        return track
