"""Face geometry shared by every part of apb2face: the landmark detector, head pose, eye/mouth openness, crops.

One detector (mediapipe 0.10.21 face mesh, 478 points, models bundled in the wheel, fully offline) and one pose
convention (`rotation_matrix` / `euler_from_rotation`) are used everywhere: the synthetic renderer, `prepare`,
generation from a photo and evaluation, so their numbers agree by construction.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

# mediapipe face-mesh indices (468-point mesh + 10 iris points at 468..477)
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)  # subject's right eye: corners 33/133, lids 160/158 over 144/153
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)  # subject's left eye
MOUTH_INNER_TOP, MOUTH_INNER_BOTTOM = 13, 14
MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER = 291, 61
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10


@dataclass(frozen=True)
class FaceSettings:
    """How faces are found and measured. `prepare` measures dataset frames with these defaults, and generation
    measures reference photos and driving videos with the same ones, so that their numbers agree."""

    detect_size: int = 640  # the detector sees the image scaled so that its long side is at most this
    crop_scale: float = 1.6  # crop side = crop_scale x the longer side of the landmark bounding box
    min_confidence: float = 0.5  # the face mesh's detection and tracking confidence
    min_face: float = 24.0  # inter-ocular distance in source pixels below which a face counts as missing
    eye_percentile: float = 90.0  # openness = EAR / (this percentile of the person's EAR), see eye_openness


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation (degrees) as a 3x3 matrix acting on face-model points in camera axes (x right, y down, z away).

    yaw > 0 moves the nose towards image right, pitch > 0 moves it down (chin down), roll > 0 turns the face
    clockwise in the image. R = Rz(roll) @ Ry(yaw) @ Rx(pitch).
    """
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `rotation_matrix`: (yaw, pitch, roll) in degrees."""
    yaw = np.arcsin(np.clip(rot[2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[2, 1], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """The canonical frontal 3D face (478, 3), camera axes, unit inter-ocular distance, centred on the nose tip.

    Derived by `scripts/build_canonical_face.py` from mediapipe's own 3D output on public-domain portraits.
    """
    with resources.files("apb2face.assets").joinpath("canonical_face_478.npy").open("rb") as f:
        return np.load(f)


def eye_aspect_ratio(points: np.ndarray, indices: tuple[int, ...]) -> float:
    """EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) for six eye points (about 0.25-0.35 open, < 0.1 closed)."""
    p = points[list(indices), :2]
    vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    return float(vertical / (2.0 * np.linalg.norm(p[0] - p[3]) + 1e-9))


def eye_aspect_ratios(points: np.ndarray) -> tuple[float, float]:
    """(left, right) EAR of the subject's own eyes."""
    return eye_aspect_ratio(points, LEFT_EYE_EAR), eye_aspect_ratio(points, RIGHT_EYE_EAR)


# EAR read by mediapipe on a closed eye, as a fraction of the same person's open EAR. The mesh never quite closes
# the lids: real blinks read 0.1-0.3 of open, the closed eyes of `apb2face synth` faces 0.3-0.8 (glasses, heavy lids).
# With 0.5, an EAR at half the open level already counts as closed (openness 0) and the event threshold of
# openness 0.5 sits at 75 % of the open EAR, well clear of the frame-to-frame noise (2-5 % of open on real clips).
# Calibrated with benchmarks/bench_prepare.py (blink-event F1 against synth truth); real clips keep their blink counts.
EYE_CLOSED_FRACTION = 0.5


def eye_openness(ear: np.ndarray, open_ear: np.ndarray | float, closed_fraction: float | None = None) -> np.ndarray:
    """Eye openness (1 open ... 0 closed) from eye aspect ratios and the person's open-eye EAR (e.g. the 90th
    percentile of their EAR): EAR / open_ear, rescaled so that `closed_fraction` maps to 0, clipped to [0, 1].
    Works elementwise: (N, 2) EARs with (2,) references give per-eye openness."""
    closed = EYE_CLOSED_FRACTION if closed_fraction is None else closed_fraction
    ratio = np.asarray(ear, np.float64) / np.maximum(np.asarray(open_ear, np.float64), 1e-6)
    return np.clip((ratio - closed) / (1.0 - closed), 0.0, 1.0).astype(np.float32)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over mouth width (0 closed, about 0.3-0.6 wide open)."""
    gap = np.linalg.norm(points[MOUTH_INNER_TOP, :2] - points[MOUTH_INNER_BOTTOM, :2])
    width = np.linalg.norm(points[MOUTH_LEFT_CORNER, :2] - points[MOUTH_RIGHT_CORNER, :2])
    return float(gap / (width + 1e-9))


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (the normaliser for landmark errors)."""
    return float(np.linalg.norm(points[RIGHT_EYE_OUTER, :2] - points[LEFT_EYE_OUTER, :2]))


@dataclass(frozen=True)
class CropBox:
    """A square crop in source-image pixels: centre and side length."""

    cx: float
    cy: float
    side: float

    def affine(self, size: int) -> np.ndarray:
        """2x3 matrix mapping source pixels to crop pixels of a `size` x `size` output."""
        s = size / self.side
        return np.array([[s, 0, size / 2 - s * self.cx], [0, s, size / 2 - s * self.cy]], dtype=np.float64)


def crop_box_from_landmarks(points: np.ndarray, scale: float = FaceSettings.crop_scale) -> CropBox:
    """Square box centred on the landmark bounding box, side = scale x its longer side (upstream used 1.4 on 106
    points; the 478-point mesh stops at the hairline, so a little more context is kept)."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    c = (lo + hi) / 2
    return CropBox(float(c[0]), float(c[1] + 0.05 * (hi - lo)[1]), float(scale * (hi - lo).max()))


def crop_image(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut `box` out of an RGB image and resize to `size`; outside the image is padded by edge replication."""
    return cv2.warpAffine(
        image,
        box.affine(size),
        (size, size),
        flags=cv2.INTER_AREA if box.side > size * 1.5 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def landmarks_to_crop(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Map source-pixel landmarks (N, 2+) into normalised crop coordinates in [0, 1] (N, 2)."""
    m = box.affine(size)
    xy = points[:, :2] @ m[:, :2].T + m[:, 2]
    return (xy / size).astype(np.float32)


class FaceMesh:
    """mediapipe face mesh (478 points incl. iris), offline. Use as a context manager; one instance per stream.

    `video=True` tracks across consecutive frames (faster, steadier); `video=False` treats each image on its own.
    `max_faces` > 1 finds (and in video mode tracks) that many faces at once, for `detect_all` (scenes with several
    people); `detect` still returns only the most prominent one.
    """

    def __init__(
        self, video: bool = False, min_confidence: float = FaceSettings.min_confidence, max_faces: int = 1
    ) -> None:
        import mediapipe as mp  # imported lazily: it is slow to import and only some commands need it

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._started = False

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._mesh.close()

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the most prominent face in an RGB uint8 image: (478, 3) with x, y in pixels and z in the same
        scale as x (smaller = closer to the camera), or None when no face is found."""
        faces = self.detect_all(image)
        return faces[0] if faces else None

    def detect_all(self, image: np.ndarray) -> list[np.ndarray]:
        """Landmarks (478, 3) of every face found (at most `max_faces`), in the mesh's order (most prominent first;
        in video mode the order is not kept from frame to frame: match faces by position)."""
        h, w = image.shape[:2]
        with contextlib.nullcontext() if self._started else native_stderr_silenced():
            result = self._mesh.process(np.ascontiguousarray(image))
        self._started = True
        scale = np.array([w, h, w], dtype=np.float64)
        return [
            (np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) * scale).astype(np.float32)
            for face in result.multi_face_landmarks or ()
        ]


def full_range_face_box(image: np.ndarray, min_confidence: float = 0.5) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) pixel box of the most confident face by mediapipe's full-range detector (BlazeFace model 1,
    faces up to about 5 m and faces filling the frame), or None. The face mesh's own detector is the short-range
    one: it misses faces that fill most of a portrait and some greyscale studio shots that this one finds."""
    import mediapipe as mp

    h, w = image.shape[:2]
    with (
        native_stderr_silenced(),
        mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence) as det,
    ):
        result = det.process(np.ascontiguousarray(image))
    if not result.detections:
        return None
    best = max(result.detections, key=lambda d: d.score[0])
    box = best.location_data.relative_bounding_box
    x0, y0 = max(0, int(box.xmin * w)), max(0, int(box.ymin * h))
    x1, y1 = min(w, int((box.xmin + box.width) * w)), min(h, int((box.ymin + box.height) * h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block. mediapipe's C++ side (TFLite, absl) prints INFO/WARNING
    lines nobody can act on when a graph first runs; commands promise one clean line on stderr for an error."""
    fd = 2  # native code writes to the descriptor, whatever sys.stderr has been replaced with
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


# Pose camera: principal point at the centroid of the pose points and focal length POSE_FOCAL_IOD inter-ocular
# distances (a face about a metre from a normal lens: nearly orthographic). Anchoring the camera to the face, not the
# image, makes the pose independent of framing: a source frame, its dataset crop and a generated crop give the same
# angles. (With focal = image width, a face filling a 256 px crop reads as a wide-angle close-up and yaw/pitch come
# out at about half their true size on `apb2face synth` frames, whose renderer projects orthographically.)
POSE_FOCAL_IOD = 12.0
# Constant pitch offset of mediapipe landmarks + PnP against `canonical_face()`, subtracted from every estimate:
# the mean (estimate - truth) over 12 `apb2face synth` identities (4,200 frames, seeds 0 and 1), measured by
# `benchmarks/bench_prepare.py accuracy`. Individual faces scatter around it by about +-3 degrees (face shape; a
# full beard reads about 5 degrees chin-down), which no constant can remove.
PITCH_BIAS = -0.2


@lru_cache(maxsize=1)
def pose_points() -> np.ndarray:
    """Mesh indices used for head pose: the rigid upper face (canonical y above the nose tip: eyes, brows, forehead,
    upper nose and cheeks). Jaw, lips and chin move with speech and hide under beards; leaving them out keeps the
    pose from following the mouth."""
    return np.flatnonzero(canonical_face()[:468, 1] < 0.0)


class PoseEstimator:
    """Head pose (yaw, pitch, roll) in degrees from 2D landmarks (478, 2+): PnP of the `pose_points` against the
    canonical face with the face-anchored camera above, minus PITCH_BIAS. For consecutive video frames each solve
    starts from the previous solution (Levenberg-Marquardt only), faster than a cold EPnP start, same pose."""

    def __init__(self) -> None:
        self._rvec: np.ndarray | None = None
        self._tvec: np.ndarray | None = None

    def __call__(self, points: np.ndarray) -> tuple[float, float, float]:
        idx = pose_points()
        model = canonical_face()[idx].astype(np.float64)
        image_pts = np.ascontiguousarray(points[idx, :2], dtype=np.float64)
        f = POSE_FOCAL_IOD * max(inter_ocular(points), 1e-3)
        c = image_pts.mean(0)
        camera = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1]], dtype=np.float64)
        rvec, tvec, ok = self._rvec, self._tvec, False
        if rvec is not None:
            ok, rvec, tvec = cv2.solvePnP(
                model,
                image_pts,
                camera,
                None,
                rvec.copy(),
                tvec.copy(),
                useExtrinsicGuess=True,
                flags=cv2.SOLVEPNP_ITERATIVE,
            )
        if not ok or not np.isfinite(rvec).all():
            ok, rvec, tvec = cv2.solvePnP(model, image_pts, camera, None, flags=cv2.SOLVEPNP_EPNP)
            if not ok:
                self._rvec = self._tvec = None
                return (0.0, 0.0, 0.0)
            _, rvec, tvec = cv2.solvePnP(
                model, image_pts, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
            )
        self._rvec, self._tvec = rvec, tvec
        rot, _ = cv2.Rodrigues(rvec)
        yaw, pitch, roll = euler_from_rotation(rot)
        return (yaw, pitch - PITCH_BIAS, roll)


def estimate_pose(points: np.ndarray, image_size: tuple[int, int] | None = None) -> tuple[float, float, float]:
    """Head pose (yaw, pitch, roll) in degrees of one face from its 2D landmarks (478, 2+); see PoseEstimator.

    `image_size` is accepted for compatibility and not needed: the camera is anchored to the face, so the result does
    not depend on where the face sits in the image or how the image was cropped or scaled."""
    return PoseEstimator()(points)
