"""Every face of a scene, found and tracked: a still image is read once (the face mesh on the image, every face); a
video is decoded once with a multi-face mesh and each detection joins the nearest track (`associate`). Each face
becomes a `revoice.FaceTrack`, ordered left to right, with a crop for the face recogniser (`identify_crop`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from apb2face.data.face import FaceMesh, FaceSettings, crop_box_from_landmarks, crop_image
from apb2face.data.face_tracks import distinct, match_to_tracks
from apb2face.errors import UserError
from apb2face.inference.faces import detect_video_faces, read_image
from apb2face.inference.pipeline import IMAGE_SUFFIXES
from apb2face.inference.revoice import (
    MAX_FRAME_PIXELS,
    FaceTrack,
    StageTimer,
    TrackBuilder,
    check_video_size,
    rgb_frames,
)

if TYPE_CHECKING:  # only a type here: render, which defines SceneConfig, imports this module
    from apb2face.inference.scene.render import SceneConfig

log = logging.getLogger(__name__)

IDENTIFY_SIDE = 256  # px: each face is cut at this size for the face recogniser


@dataclass(frozen=True)
class SceneTrack:
    """Every face of a scene, left to right, and how to read its frames."""

    path: Path
    shape: tuple[int, int]  # (H, W)
    fps: float  # the video's rate; for a still, the configured output rate
    faces: list[FaceTrack]
    crops: list[np.ndarray]  # (IDENTIFY_SIDE, IDENTIFY_SIDE, 3) of each face, for the face recogniser
    image: np.ndarray | None  # a still's pixels (None for a video)
    pts: np.ndarray  # (N,) the video frames' timestamps (one 0 for a still)

    @property
    def still(self) -> bool:
        return self.image is not None


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def track_scene(
    path: str | Path, config: SceneConfig, timer: StageTimer | None = None, crop_scale: float | None = None
) -> SceneTrack:
    """Find every face of a still image, or track every face through a video (UserError when there is none)."""
    timer = timer or StageTimer()
    settings = FaceSettings()
    crop_scale = settings.crop_scale if crop_scale is None else crop_scale
    path = Path(path)
    if is_image(path):
        return track_image(read_image(path), config, crop_scale, path)
    return track_scene_video(path, config, settings, crop_scale, timer)


def track_image(
    image: np.ndarray, config: SceneConfig, crop_scale: float | None = None, path: str | Path = "scene"
) -> SceneTrack:
    """Every face of a still scene given as pixels ((H, W, 3) uint8 RGB, e.g. received by a server); `path` only
    names it in messages."""
    settings = FaceSettings()
    crop_scale = settings.crop_scale if crop_scale is None else crop_scale
    path = Path(path)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"a scene image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}", path)
    if image.shape[0] * image.shape[1] > MAX_FRAME_PIXELS:
        raise UserError(f"image is {image.shape[1]}x{image.shape[0]}; a scene takes up to 4K (4096x2304)", path)
    with FaceMesh(video=False, min_confidence=settings.min_confidence, max_faces=config.max_faces) as mesh:
        found = distinct(detect_video_faces(mesh, image, settings), crop_scale)
    if not found:
        raise UserError("no face found in the scene", path)
    found.sort(key=lambda lm: crop_box_from_landmarks(lm, crop_scale).cx)
    faces, crops = [], []
    for landmarks in found:
        builder = TrackBuilder(crop_scale, settings.eye_percentile)
        builder.add(landmarks)
        faces.append(builder.finish(image.shape[:2], config.fps, np.zeros(1), np.zeros(1), config.render))
        crops.append(identify_crop(image, landmarks))
    return SceneTrack(path, image.shape[:2], config.fps, faces, crops, image, np.zeros(1, np.int64))


def track_scene_video(
    path: Path, config: SceneConfig, settings: FaceSettings, crop_scale: float, timer: StageTimer
) -> SceneTrack:
    info = check_video_size(path)
    pts, times = [], []
    tracks: list[Tracklet] = []
    shape = (info.height, info.width)
    with FaceMesh(video=True, min_confidence=settings.min_confidence, max_faces=config.max_faces) as mesh:
        for rgb, pts_k, time_k in rgb_frames(path, info.fps, timer):
            with timer("track"):
                shape = rgb.shape[:2]
                pts.append(pts_k)
                times.append(time_k)
                found = distinct(detect_video_faces(mesh, rgb, settings), crop_scale)
                associate(tracks, found, rgb, len(pts) - 1, crop_scale, settings)
    if not pts:
        raise UserError("video stream has no frames", path)
    kept = [t for t in tracks if t.presence(len(pts)) >= config.min_presence]
    if not kept:
        raise UserError("no face found in the scene", path)
    if len(kept) < len(tracks):
        log.info("%s: %d short face track(s) dropped as false detections", path, len(tracks) - len(kept))
    kept.sort(key=lambda t: t.median_x())
    faces = [t.builder.finish(shape, info.fps, np.asarray(pts), np.asarray(times), config.render) for t in kept]
    for i, face in enumerate(faces):
        if not face.found.all():
            log.info("%s: face %d not found in %d of %d frames", path, i + 1, (~face.found).sum(), len(face))
    return SceneTrack(path, shape, info.fps, faces, [t.crop for t in kept], None, np.asarray(pts, np.int64))


class Tracklet:
    """One face followed through a video: its builder, last box and a crop for the face recogniser."""

    def __init__(self, crop_scale: float, settings: FaceSettings, frames_before: int) -> None:
        self.builder = TrackBuilder(crop_scale, settings.eye_percentile)
        for _ in range(frames_before):
            self.builder.add(None)
        self.last: tuple[float, float, float] | None = None
        self.crop: np.ndarray | None = None

    def add(self, landmarks: np.ndarray | None, frame: np.ndarray) -> None:
        self.builder.add(landmarks)
        if landmarks is not None:
            box = crop_box_from_landmarks(landmarks, self.builder.crop_scale)
            self.last = (box.cx, box.cy, box.side)
            if self.crop is None:
                self.crop = identify_crop(frame, landmarks)

    def presence(self, frames: int) -> float:
        return sum(self.builder.found) / max(1, frames)

    def median_x(self) -> float:
        boxes = np.asarray(self.builder.boxes)[np.asarray(self.builder.found)]
        return float(np.median(boxes[:, 0]))


def associate(
    tracks: list[Tracklet],
    found: list[np.ndarray],
    frame: np.ndarray,
    index: int,
    crop_scale: float,
    settings: FaceSettings,
) -> None:
    """Give frame `index`'s faces to the tracks nearest to them (`face_tracks.match_to_tracks`); a face near no
    track starts a new one."""
    boxes = [crop_box_from_landmarks(lm, crop_scale) for lm in found]
    given = match_to_tracks([track.last for track in tracks], boxes)
    for t, track in enumerate(tracks):
        track.add(found[given[t]] if t in given else None, frame)
    for f, landmarks in enumerate(found):
        if f not in given.values():
            track = Tracklet(crop_scale, settings, index)
            track.add(landmarks, frame)
            tracks.append(track)


def identify_crop(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face cut as the dataset cuts faces (so it compares with the checkpoint's identity crops)."""
    return crop_image(frame, crop_box_from_landmarks(landmarks), IDENTIFY_SIDE)
