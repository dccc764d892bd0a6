"""What the face mesh reads off generated (or real) frames: landmarks, head pose, eye aspect ratios and mouth
opening, measured exactly as `prepare` measures a dataset so that the readings compare with the driving signals.

`evaluate` (clips, tracked in video mode) and `decouple` (single sweeps, each image on its own) both measure
through `measure_face_mesh`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from apb2face.data import face as face_geo

MIN_DETECT_SIDE = 256  # face mesh sees small crops upscaled to this (it misses faces in 64 px images)


@dataclass
class MeshMeasures:
    """Per-frame face mesh readings of a sequence of n frames; NaN where the mesh finds no face."""

    landmarks: np.ndarray  # (n, 478, 2) pixels of the measured frames
    pose: np.ndarray  # (n, 3) yaw, pitch, roll in degrees
    ear: np.ndarray  # (n, 2) eye aspect ratios (left, right)
    mouth: np.ndarray  # (n,) mouth opening (inner-lip gap / mouth width)

    @property
    def found(self) -> np.ndarray:
        """(n,) bool: the mesh found a face."""
        return np.isfinite(self.mouth)


def measured_pose(points: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """Head pose of a face crop measured exactly as `prepare` measures dataset poses (face.estimate_pose: camera
    anchored to the face, its constant PITCH_BIAS subtracted), so it is comparable with the driving pose."""
    return face_geo.estimate_pose(points, image_size)


def upscale_for_detection(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame enlarged so that its short side is at least MIN_DETECT_SIDE, and the factor used."""
    h, w = frame.shape[:2]
    factor = max(1.0, MIN_DETECT_SIDE / min(h, w))
    if factor == 1.0:
        return frame, factor
    return cv2.resize(frame, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_CUBIC), factor


def measure_face_mesh(frames: np.ndarray, video: bool) -> MeshMeasures:
    """Run the face mesh over frames (n, H, W, 3) RGB uint8. `video=True` tracks the face through the sequence
    (frames of one clip); `video=False` reads every frame on its own (unrelated images, such as a sweep)."""
    n, h, w = frames.shape[:3]
    measures = MeshMeasures(
        landmarks=np.full((n, face_geo.canonical_face().shape[0], 2), np.nan),
        pose=np.full((n, 3), np.nan),
        ear=np.full((n, 2), np.nan),
        mouth=np.full(n, np.nan),
    )
    with face_geo.FaceMesh(video=video) as mesh:
        for i, frame in enumerate(frames):
            probe, factor = upscale_for_detection(frame)
            points = mesh.detect(probe)
            if points is None:
                continue
            points = points[:, :2] / factor
            measures.landmarks[i] = points
            measures.pose[i] = measured_pose(points, (h, w))
            measures.ear[i] = face_geo.eye_aspect_ratios(points)
            measures.mouth[i] = face_geo.mouth_opening(points)
    return measures
