"""Who is in a photo: dlib's face-recognition ResNet (128-d embeddings) and a nearest-reference match.

The network and its 5-point aligner ship as files in the `face-recognition-models` package and run with `dlib-bin`,
so nothing is downloaded at run time. Faces are found with dlib's own HOG detector, not the mediapipe mesh: dlib's
5-point shape predictor was trained on boxes from that detector, so its boxes give the alignment the ResNet expects
(the distances below and dlib's 0.6 threshold were measured that way). Small images, such as the 128 px identity
crops a checkpoint ships, are upscaled first because the detector misses faces under about 80 px.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# dlib's own threshold: two embeddings closer than this are the same person (99.38 % on LFW, dlib's model notes)
SAME_PERSON_DISTANCE = 0.6
EMBEDDING_SIZE = 128
MIN_DETECT_SIDE = 256  # smaller images are upscaled to this short side before detection
MAX_DETECT_SIDE = 1024  # larger images are downscaled to this long side (the HOG detector's time grows with pixels)
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"


def model_dir() -> Path:
    """The weights folder of `face-recognition-models`, found without importing the package (its __init__ needs
    pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass(frozen=True)
class IdentityMatch:
    """The reference closest to a face, and how far it is (embedding distance; same person at <= 0.6)."""

    name: str
    distance: float

    @property
    def same_person(self) -> bool:
        return self.distance <= SAME_PERSON_DISTANCE


class FaceEmbedder:
    """dlib face-recognition embeddings of RGB images: `embed(image)` is a 128-d vector, None when no face."""

    def __init__(self) -> None:
        import dlib

        folder = model_dir()
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(folder / SHAPE_MODEL))
        self._net = dlib.face_recognition_model_v1(str(folder / RECOGNITION_MODEL))

    def embed(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """The embedding of the largest face in an (H, W, 3) uint8 RGB image, or None when the detector finds none."""
        image = detection_scale(np.ascontiguousarray(image_rgb, dtype=np.uint8))
        boxes = self._detector(image, 0) or self._detector(image, 1)  # one 2x upsampling pass only if needed
        if not boxes:
            return None
        box = max(boxes, key=lambda b: b.area())
        shape = self._shapes(image, box)
        return np.asarray(self._net.compute_face_descriptor(image, shape), dtype=np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance between two embeddings (dlib's measure: same person at <= SAME_PERSON_DISTANCE)."""
        return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))

    def embed_all(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embeddings of named images; the ones without a detectable face are left out."""
        out = {}
        for name, image in images.items():
            vector = self.embed(image)
            if vector is not None:
                out[name] = vector
        return out


def detection_scale(image: np.ndarray) -> np.ndarray:
    """The image at a size the HOG detector handles: short side at least MIN_DETECT_SIDE, long side at most
    MAX_DETECT_SIDE (upscaling wins for very elongated images)."""
    h, w = image.shape[:2]
    factor = min(1.0, MAX_DETECT_SIDE / max(h, w))
    if min(h, w) * factor < MIN_DETECT_SIDE:
        factor = MIN_DETECT_SIDE / min(h, w)
    if abs(factor - 1.0) < 1e-6:
        return image
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def closest_identity(embedding: np.ndarray, references: dict[str, np.ndarray]) -> IdentityMatch | None:
    """The reference embedding nearest to `embedding` (None when there are no references)."""
    if not references:
        return None
    distances = {name: FaceEmbedder.distance(embedding, ref) for name, ref in references.items()}
    name = min(distances, key=lambda n: (distances[n], n))
    return IdentityMatch(name, distances[name])


def match_photo(
    embedder: FaceEmbedder, photo_rgb: np.ndarray, references: dict[str, np.ndarray]
) -> IdentityMatch | None:
    """Which of N reference images (name -> RGB) the photo shows: the closest identity and its distance. None when
    the photo has no detectable face or no reference has one."""
    vector = embedder.embed(photo_rgb)
    return None if vector is None else closest_identity(vector, embedder.embed_all(references))
