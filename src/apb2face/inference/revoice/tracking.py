"""Pass 1 of a re-voice: decode every frame of the driving video once and track the face (the face mesh in video
mode, as `prepare` and `motion_from_video` measure it), keeping per frame only the pose, eye aspect ratios and the
few landmarks the paste needs; boxes are smoothed in time (`compose.smooth_track`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from apb2face.data.face import (
    CropBox,
    FaceMesh,
    FaceSettings,
    PoseEstimator,
    crop_box_from_landmarks,
    eye_aspect_ratios,
)
from apb2face.data.video import VideoInfo, frame_to_rgb, probe, resample_timestamps
from apb2face.errors import UserError
from apb2face.inference.compose import PASTE_POINTS, smooth_track
from apb2face.inference.faces import detect_video_face
from apb2face.inference.motion import ears_to_openness
from apb2face.inference.revoice.config import RevoiceConfig
from apb2face.inference.revoice.overlap import prefetch
from apb2face.inference.revoice.timing import StageTimer

log = logging.getLogger(__name__)

MAX_FRAME_PIXELS = 4096 * 2304  # 4K (UHD and DCI) and anything smaller; 8K would need gigabytes per chunk
READ_AHEAD = 4  # frames decoded ahead of the face mesh (4 frames of 4K: 110 MB)


@dataclass(frozen=True)
class FaceTrack:
    """What pass 1 keeps of each source frame (a few hundred bytes; never the pixels)."""

    shape: tuple[int, int]  # (H, W) of the upright frames
    fps: float  # the video's average frame rate: the output's rate
    pts: np.ndarray  # (N,) int64 presentation timestamps, for seeking
    times: np.ndarray  # (N,) seconds from the first frame
    found: np.ndarray  # (N,) bool: a face was found (and is big enough)
    points: np.ndarray  # (N, P, 2) float32 PASTE_POINTS in frame pixels (0 where not found)
    boxes: np.ndarray  # (N, 3) smoothed crop box cx, cy, side in frame pixels
    raw_boxes: np.ndarray  # (N, 3) the same before smoothing
    pose: np.ndarray  # (N, 3) yaw, pitch, roll degrees, interpolated across frames without a face
    eyes: np.ndarray  # (N, 2) openness, likewise

    def __len__(self) -> int:
        return len(self.pts)

    def box(self, index: int) -> CropBox:
        cx, cy, side = self.boxes[index]
        return CropBox(float(cx), float(cy), float(side))

    def ticks(self) -> np.ndarray:
        """The source frame shown at each tick of the output rate (VFR sources repeat or drop frames)."""
        return resample_timestamps(list(self.times), self.fps)


class TrackBuilder:
    """Collects one face's per-frame readings while a video is decoded (one builder per face: each has its own
    warm-started pose solver) and turns them into a smoothed `FaceTrack`."""

    def __init__(self, crop_scale: float, eye_percentile: float) -> None:
        self.crop_scale = crop_scale
        self.eye_percentile = eye_percentile
        self.estimator = PoseEstimator()
        self.found: list[bool] = []
        self.points: list[np.ndarray] = []
        self.boxes: list[tuple[float, float, float]] = []
        self.pose: list[tuple[float, float, float]] = []
        self.ears: list[tuple[float, float]] = []

    def add(self, landmarks: np.ndarray | None) -> None:
        """The next frame's landmarks of this face (frame pixels), or None where it was not found."""
        self.found.append(landmarks is not None)
        if landmarks is None:
            self.points.append(np.zeros((len(PASTE_POINTS), 2), np.float32))
            self.boxes.append((0.0, 0.0, 0.0))
            self.pose.append((0.0, 0.0, 0.0))
            self.ears.append((0.0, 0.0))
            return
        box = crop_box_from_landmarks(landmarks, self.crop_scale)
        self.points.append(landmarks[list(PASTE_POINTS), :2].astype(np.float32))
        self.boxes.append((box.cx, box.cy, box.side))
        self.pose.append(self.estimator(landmarks))
        self.ears.append(eye_aspect_ratios(landmarks))

    def finish(
        self, shape: tuple[int, int], fps: float, pts: np.ndarray, times: np.ndarray, config: RevoiceConfig
    ) -> FaceTrack:
        """The track, boxes and pose smoothed with `config`'s sigmas; needs at least one frame with the face."""
        mask = np.asarray(self.found)
        raw = np.asarray(self.boxes, np.float64)
        smoothed = np.concatenate(
            [smooth_track(raw[:, :2], mask, config.box_sigma), smooth_track(raw[:, 2:], mask, config.side_sigma)],
            axis=1,
        )
        filled_pose = fill_missing(np.asarray(self.pose, np.float64), mask)
        t = np.asarray(times, np.float64)
        return FaceTrack(
            shape=shape,
            fps=float(fps),
            pts=np.asarray(pts, np.int64),
            times=t - t[0],
            found=mask,
            points=np.asarray(self.points, np.float32),
            boxes=smoothed,
            raw_boxes=raw,
            pose=smooth_track(filled_pose, np.ones(len(mask), bool), config.pose_sigma).astype(np.float32),
            eyes=ears_to_openness(fill_missing(np.asarray(self.ears, np.float64), mask), self.eye_percentile),
        )


def track_video(
    path: str | Path,
    config: RevoiceConfig,
    timer: StageTimer | None = None,
    crop_scale: float | None = None,
) -> FaceTrack:
    """Pass 1: decode every frame of `path` once and track the face. UserError when the file has no video stream,
    no frames, frames larger than 4K, or no face in any frame."""
    timer = timer or StageTimer()
    info = check_video_size(path)
    settings = FaceSettings()
    builder = TrackBuilder(settings.crop_scale if crop_scale is None else crop_scale, settings.eye_percentile)
    pts, times = [], []
    shape = (info.height, info.width)
    with FaceMesh(video=True, min_confidence=settings.min_confidence) as mesh:
        for rgb, pts_k, time_k in rgb_frames(path, info.fps, timer, READ_AHEAD if config.overlap else 0):
            with timer("track"):
                shape = rgb.shape[:2]
                pts.append(pts_k)
                times.append(time_k)
                builder.add(detect_video_face(mesh, rgb, settings))
    if not pts:
        raise UserError("video stream has no frames", path)
    mask = np.asarray(builder.found)
    if not mask.any():
        raise UserError("no face found in any frame of the video", path)
    if not mask.all():
        log.info("%s: no face in %d of %d frames; they pass through unchanged", path, (~mask).sum(), len(mask))
    return builder.finish(shape, info.fps, np.asarray(pts), np.asarray(times), config)


def check_video_size(path: str | Path) -> VideoInfo:
    """The video's header (`probe`); UserError when its frames are larger than 4K."""
    info = probe(path)
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise UserError(f"video is {info.width}x{info.height}; re-voicing takes up to 4K (4096x2304)", path)
    return info


def rgb_frames(
    path: str | Path, fps: float, timer: StageTimer, read_ahead: int = READ_AHEAD
) -> Iterator[tuple[np.ndarray, int, float]]:
    """(upright RGB frame, timestamp for seeking, seconds) of every frame, decoding and conversion counted as
    'decode'; frames without timestamps are numbered at `fps`. `read_ahead` > 0 decodes that many frames ahead in
    a thread of its own, beside the caller's face tracking."""
    with prefetch(_rgb_frames(path, fps, timer), read_ahead, "track-decode") as frames:
        yield from frames


def _rgb_frames(path: str | Path, fps: float, timer: StageTimer) -> Iterator[tuple[np.ndarray, int, float]]:
    for k, frame in enumerate(decoded_frames(path, timer)):
        with timer("decode"):
            rgb = frame_to_rgb(frame)
        yield rgb, k if frame.pts is None else int(frame.pts), float(frame.time) if frame.time is not None else k / fps


def decoded_frames(path: str | Path, timer: StageTimer) -> Iterator[av.VideoFrame]:
    """The first video stream's frames, in presentation order (decoding counted as 'decode')."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = container.decode(stream)
            while True:
                with timer("decode"):
                    frame = next(frames, None)
                if frame is None:
                    return
                yield frame
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode video ({str(exc).splitlines()[0][:160]})", path) from None


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, C) rows where `found` is False replaced by linear interpolation from the found ones (held at the ends)."""
    x = np.arange(len(values))
    return np.stack([np.interp(x, x[found], values[found, c]) for c in range(values.shape[1])], axis=1)
