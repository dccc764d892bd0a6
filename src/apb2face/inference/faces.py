"""Faces for generation: read a reference photo, find the face and crop it exactly as `prepare` crops dataset frames.

The detector sees the image at prepare's working size (long side at most `PrepareConfig.detect_size`), and small
images are upscaled first because the face mesh misses faces of a few dozen pixels; landmarks are mapped back to the
full-resolution image, and the crop is cut from it with `crop_box_from_landmarks` + `crop_image` (the same scale as
prepare and the synthetic renderer).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face
from apb2face.errors import UserError

log = logging.getLogger(__name__)

MIN_DETECT_SIDE = 256  # smaller images are upscaled to this short side before detection
MIN_IMAGE_SIDE = 8  # a reference needs at least this many pixels on each side
PHOTO_CROP_GROWTH = 2.2  # detector box side -> the square the mesh looks at (head, hair and some shoulder)
# a reference photo's header is read before decoding: a small file may claim 40000x40000 pixels (4.8 GB decoded);
# 100 megapixels holds any camera photo
MAX_IMAGE_PIXELS = 100_000_000


def detect_landmarks(mesh: face.FaceMesh, image: np.ndarray, detect_size: int | None = None) -> np.ndarray | None:
    """(478, 3) landmarks in `image` pixels, found on a copy scaled to the detector's working size; None if no face."""
    faces = detect_all_landmarks(mesh, image, detect_size)
    return faces[0] if faces else None


def detect_photo_landmarks(mesh: face.FaceMesh, image: np.ndarray) -> np.ndarray | None:
    """Landmarks of the face in a photo of any framing: the mesh on the whole image, and when it finds nothing, the
    full-range detector's box grown to a head-and-shoulders square and the mesh on that crop (a face that fills the
    frame, a small face in a wide shot). None when neither finds a face."""
    points = detect_landmarks(mesh, image)
    if points is not None:
        return points
    box = face.full_range_face_box(image)
    return None if box is None else landmarks_in_box(mesh, image, box)


def landmarks_in_box(mesh: face.FaceMesh, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The mesh run on a head-sized square around a detector's face box (x0, y0, x1, y1), landmarks mapped back to
    `image` pixels; None when the mesh finds no face there."""
    x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0) * PHOTO_CROP_GROWTH)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    top, left = cy - side // 2, cx - side // 2
    h, w = image.shape[:2]
    # padded with the edge colour, so a face at the border still sits mid-crop as the mesh expects
    crop = cv2.copyMakeBorder(
        image[max(0, top) : top + side, max(0, left) : left + side],
        max(0, -top),
        max(0, top + side - h),
        max(0, -left),
        max(0, left + side - w),
        cv2.BORDER_REPLICATE,
    )
    found = detect_landmarks(mesh, crop)
    if found is None:
        return None
    return (found + np.array([left, top, 0], dtype=np.float32)).astype(np.float32)


def detect_all_landmarks(mesh: face.FaceMesh, image: np.ndarray, detect_size: int | None = None) -> list[np.ndarray]:
    """Every face's (478, 3) landmarks in `image` pixels (at most the mesh's `max_faces`, most prominent first),
    found on a copy scaled to the detector's working size."""
    if detect_size is None:
        detect_size = face.FaceSettings().detect_size
    h, w = image.shape[:2]
    factor = min(1.0, detect_size / max(h, w))
    if min(h, w) * factor < MIN_DETECT_SIDE:
        factor = min(MIN_DETECT_SIDE / min(h, w), 4.0)
    if abs(factor - 1.0) > 1e-6:
        probe = cv2.resize(
            image,
            (max(1, round(w * factor)), max(1, round(h * factor))),
            interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC,
        )
    else:
        probe = image
    sx, sy = w / probe.shape[1], h / probe.shape[0]
    return [points * np.array([sx, sy, sx], dtype=np.float32) for points in mesh.detect_all(probe)]


def detect_video_face(mesh: face.FaceMesh, frame: np.ndarray, settings: face.FaceSettings) -> np.ndarray | None:
    """Landmarks of the face in one video frame as `prepare` measures dataset frames; None when there is none or it
    is smaller than `settings.min_face` (inter-ocular pixels: too small to measure pose and eyes)."""
    points = detect_landmarks(mesh, frame, settings.detect_size)
    if points is not None and face.inter_ocular(points) < settings.min_face:
        return None
    return points


def detect_video_faces(mesh: face.FaceMesh, frame: np.ndarray, settings: face.FaceSettings) -> list[np.ndarray]:
    """`detect_video_face` for every face in the frame (a mesh made with max_faces > 1): too-small faces dropped."""
    faces = detect_all_landmarks(mesh, frame, settings.detect_size)
    return [points for points in faces if face.inter_ocular(points) >= settings.min_face]


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> RGB uint8 (EXIF orientation applied); UserError naming the file when it is missing, not an
    image, corrupt, or (by its header, before decoding) larger than MAX_IMAGE_PIXELS or smaller than MIN_IMAGE_SIDE."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    width, height = image_size(path)
    if width * height > MAX_IMAGE_PIXELS:
        raise UserError(f"image is {width}x{height} pixels, more than {MAX_IMAGE_PIXELS // 10**6} megapixels", path)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise UserError(
            f"image is {width}x{height} pixels; a reference needs {MIN_IMAGE_SIDE} or more on each side", path
        )
    data = np.fromfile(path, dtype=np.uint8)
    # OpenCV decodes from memory (cv2.imread would print its own WARN lines for a bad file), and libjpeg/libpng
    # print warnings for damaged files on the native stderr: the user gets the one line below instead
    with face.native_stderr_silenced():
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
    if image is None:
        raise UserError("cannot read image (not an image, or corrupt)", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding its pixels (PIL opens images lazily)."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                return image.size
        except Image.DecompressionBombError:  # PIL's own cap, far above ours: too large all the same
            raise UserError(f"image is larger than {MAX_IMAGE_PIXELS // 10**6} megapixels", path) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise UserError("cannot read image (not an image, or corrupt)", path) from None


def align_face(
    image: np.ndarray, size: int, crop_scale: float | None = None, path: str | Path | None = None
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Detect the face in a photo of any size and crop it as the dataset crops frames. Returns the (size, size, 3)
    crop and the head pose (yaw, pitch, roll degrees). UserError when there is no face."""
    settings = face.FaceSettings()
    detect_size = settings.detect_size
    crop_scale = settings.crop_scale if crop_scale is None else crop_scale
    image = as_rgb_uint8(image)
    with face.FaceMesh(video=False) as mesh:
        points = detect_landmarks(mesh, image, detect_size)
        if points is None:
            points = detect_photo_landmarks(mesh, image)
    if points is None:
        raise UserError("no face found in the image", path or "reference image")
    box = face.crop_box_from_landmarks(points, crop_scale)
    if box.side < size / 2:
        log.warning(
            "%s: the face is small (crop side %.0f px for a %d px model); expect a blurry result",
            path or "reference image",
            box.side,
            size,
        )
    return face.crop_image(image, box, size), face.estimate_pose(points, image.shape[:2])


def measure_pose(crop: np.ndarray) -> tuple[float, float, float] | None:
    """Head pose of the face in a crop, or None when the detector finds none."""
    with face.FaceMesh(video=False) as mesh:
        points = detect_landmarks(mesh, crop)
    return None if points is None else face.estimate_pose(points, crop.shape[:2])


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """An image array as contiguous (H, W, 3) uint8 RGB (grey and RGBA accepted; floats in [0, 1] or [0, 255])."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise UserError(f"reference image must be an RGB array (H, W, 3), got shape {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:
        if image.dtype.kind == "f" and image.max(initial=0) <= 1.0:
            image = image * 255.0
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)
