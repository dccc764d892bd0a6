"""Evaluation metrics as pure functions: image similarity, landmark geometry, detection, pose, blink, lip sync,
sharpness and FID.

Conventions used by every function here (and stated in every report):

* Images are RGB uint8 (H, W, 3) or (N, H, W, 3), or float in [0, 1] of the same shapes.
* SSIM follows Wang et al. 2004 exactly as the official APB2FaceV2 repository's `metrics/ssim` does: Gaussian window
  11 x 11, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 on RGB in [0, 1], zero-padded "same" filtering, mean over pixels and
  channels per image.
* Landmarks are the mediapipe 478-point scheme (the detector `prepare` uses, `apb2face.data.face.FaceMesh`) in
  pixels; distances are in percent of the ground-truth inter-ocular distance (outer eye corners).
* Detection rate uses a face *detector*, not the landmark model: mediapipe's BlazeFace short-range face detector
  (`mp.solutions.face_detection`, its own network). OpenCV's bundled Viola-Jones Haar cascade, which shares nothing
  with mediapipe, gives a second reading.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from apb2face.data import face as face_geo
from apb2face.data.identity import EMBEDDING_SIZE, FaceEmbedder
from apb2face.models.config import GEOMETRY_POINTS
from apb2face.models.image_similarity import as_unit_batch
from apb2face.models.image_similarity import ssim as ssim  # re-exported: the metrics are read as M.ssim, M.psnr, ...
from apb2face.models.inception import load_inception

log = logging.getLogger(__name__)

SSIM_DEFINITION = (
    "SSIM (Wang et al. 2004): Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, RGB in [0, 1], "
    "zero-padded 'same' filtering, mean over pixels and the 3 channels per frame (as the official "
    "APB2FaceV2 metrics/ssim), then averaged over frames"
)
PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; capping keeps means and JSON finite

# mediapipe FACEMESH_LIPS (outer and inner lip contours), 40 points
MOUTH_POINTS: tuple[int, ...] = (
    0,
    13,
    14,
    17,
    37,
    39,
    40,
    61,
    78,
    80,
    81,
    82,
    84,
    87,
    88,
    91,
    95,
    146,
    178,
    181,
    185,
    191,
    267,
    269,
    270,
    291,
    308,
    310,
    311,
    312,
    314,
    317,
    318,
    321,
    324,
    375,
    402,
    405,
    409,
    415,
)
FACE_POINTS: tuple[int, ...] = tuple(range(468))  # the whole face mesh; the 10 iris points are left out

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_NAME = f"OpenCV Haar cascade ({HAAR_CASCADE}, Viola-Jones, minNeighbors 3; shares nothing with mediapipe)"
BLAZEFACE_NAME = (
    "mediapipe BlazeFace short-range face detector (face_detection, model 0, confidence >= 0.5; a "
    "detection network separate from the face-mesh landmark model)"
)
DETECTOR_NAME = BLAZEFACE_NAME
DETECT_SIZE = 256  # detectors see every crop at this size, so 64 px and 256 px outputs are judged alike


# ----------------------------------------------------------------------------------------------------- images
def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB (N,) with peak 1.0 on [0, 1] RGB, capped at PSNR_CAP_DB (identical images)."""
    x, y = as_unit_batch(a), as_unit_batch(b)
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(1.0 / mse)
    return np.minimum(db, PSNR_CAP_DB)


# -------------------------------------------------------------------------------------------------- landmarks
def landmark_distance(pred: np.ndarray, target: np.ndarray, points: Sequence[int] = FACE_POINTS) -> np.ndarray:
    """Mean point-to-point distance over `points`, per frame, in % of the target's inter-ocular distance.

    pred, target: (N, 478, 2+) or (478, 2+) landmarks in pixels. Returns (N,).
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.ndim == 2:
        p, t = p[None], t[None]
    idx = list(points)
    dist = np.linalg.norm(p[:, idx, :2] - t[:, idx, :2], axis=-1).mean(axis=1)
    iod = np.array([face_geo.inter_ocular(f) for f in t])
    return 100.0 * dist / np.maximum(iod, 1e-9)


# -------------------------------------------------------------------------------------------------- detection
class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face cascade (see HAAR_NAME), on the crop resized to DETECT_SIZE.

    Reliable on real faces; it misses some stylised `apb2face synth` faces (e.g. heavy glasses), which is why it is
    the second reading and BlazeFace the first.
    """

    def __init__(self, work_size: int = DETECT_SIZE, min_neighbors: int = 3) -> None:
        path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"cannot load the OpenCV Haar cascade {path}")
        self.work_size = work_size
        self.min_neighbors = min_neighbors

    def __enter__(self) -> HaarFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def count(self, image: np.ndarray) -> int:
        """Number of faces found in an RGB uint8 image."""
        gray = _square(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), self.work_size)
        min_side = max(24, self.work_size // 6)  # a face smaller than 1/6 of a face crop is not the subject
        faces = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        return len(faces)

    def detect(self, image: np.ndarray) -> bool:
        return self.count(image) > 0


class BlazeFaceDetector:
    """mediapipe's BlazeFace short-range face detector (see BLAZEFACE_NAME), on the crop resized to DETECT_SIZE.
    Use as a context manager (it holds a mediapipe graph)."""

    def __init__(self, work_size: int = DETECT_SIZE, min_confidence: float = 0.5) -> None:
        import mediapipe as mp  # slow to import; only evaluation needs it here

        self._det = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence
        )
        self.work_size = work_size
        self._started = False

    def __enter__(self) -> BlazeFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._det.close()

    def count(self, image: np.ndarray) -> int:
        img = _square(np.ascontiguousarray(image), self.work_size)
        with contextlib.nullcontext() if self._started else face_geo.native_stderr_silenced():
            result = self._det.process(img)
        self._started = True
        return len(result.detections or [])

    def detect(self, image: np.ndarray) -> bool:
        return self.count(image) > 0


def _square(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (side, side):
        return image
    interp = cv2.INTER_AREA if min(h, w) > side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interp)


def detection_rate(images: Iterable[np.ndarray], detector: HaarFaceDetector | BlazeFaceDetector) -> float:
    """Share of images (0..1) in which `detector` finds at least one face."""
    hits = [detector.detect(img) for img in images]
    if not hits:
        raise ValueError("no images")
    return float(np.mean(hits))


# ------------------------------------------------------------------------------------------------------ pose
def pose_errors(measured: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """Absolute yaw/pitch/roll error in degrees (N, 3); rows with NaN in `measured` (no face) stay NaN."""
    return np.abs(np.asarray(measured, dtype=np.float64) - np.asarray(driving, dtype=np.float64))


# ----------------------------------------------------------------------------------------------------- blinks
def blink_events(closed: np.ndarray, min_length: int = 1) -> list[tuple[int, int]]:
    """Runs of True in a per-frame "eyes closed" mask as inclusive (start, end) frame intervals."""
    mask = np.asarray(closed, dtype=bool)
    events, start = [], None
    for i, c in enumerate(mask):
        if c and start is None:
            start = i
        elif not c and start is not None:
            if i - start >= min_length:
                events.append((start, i - 1))
            start = None
    if start is not None and len(mask) - start >= min_length:
        events.append((start, len(mask) - 1))
    return events


def openness_closed(openness: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Driving-signal eyes closed mask: mean openness of both eyes (1 open ... 0 closed) below `threshold`."""
    o = np.asarray(openness, dtype=np.float64)
    return (o.mean(axis=1) if o.ndim == 2 else o) < threshold


def ear_closed(ear: np.ndarray, open_level: np.ndarray | float | None = None, threshold: float = 0.5) -> np.ndarray:
    """Eyes-closed mask from per-frame eye aspect ratios (N, 2) or (N,), read exactly as `prepare` reads eyes:
    openness = face.eye_openness(EAR, open level) (EAR over the open-eye level, rescaled by the mesh's closed-eye
    fraction), closed when the mean openness of both eyes is below `threshold`. The open level defaults to the
    series' own 90th percentile (prepare's per-person reference); NaN (no face) counts as not closed."""
    e = np.asarray(ear, dtype=np.float64)
    valid = np.isfinite(e).all(axis=1) if e.ndim == 2 else np.isfinite(e)
    if not valid.any():
        return np.zeros(len(e), dtype=bool)
    if open_level is None:
        open_level = np.percentile(e[valid], 90, axis=0)
    openness = face_geo.eye_openness(np.where(np.isfinite(e), e, 0.0), open_level)
    mean = openness.mean(axis=1) if openness.ndim == 2 else openness
    return valid & (mean < threshold)


@dataclass
class EventCounts:
    """Blink-event matching counts; add them over clips and take `f1` of the total."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def f1(self) -> float | None:
        """F1 of event detection; None when there is nothing to score (no true and no predicted events)."""
        if self.tp + self.fp + self.fn == 0:
            return None
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)


def match_events(pred: list[tuple[int, int]], true: list[tuple[int, int]], tolerance: int = 2) -> EventCounts:
    """One-to-one matching of blink intervals: a predicted and a true event match when they overlap after widening
    each by `tolerance` frames (greedy in time order)."""
    used = [False] * len(true)
    tp = 0
    for ps, pe in pred:
        for j, (ts, te) in enumerate(true):
            if not used[j] and ps <= te + tolerance and ts <= pe + tolerance:
                used[j] = True
                tp += 1
                break
    return EventCounts(tp=tp, fp=len(pred) - tp, fn=len(true) - tp)


# --------------------------------------------------------------------------------------------------- lip sync
def geometry_mouth_opening(points: np.ndarray) -> np.ndarray:
    """Per-frame mouth opening of (N, K, 2) points in the model's geometry order (models.config.GEOMETRY_POINTS:
    what the fuser predicts; a clip's stored face-mesh points indexed by GEOMETRY_POINTS): the inner-lip gap over
    the mouth width, the face mesh's `face.mouth_opening` read on the same four points."""
    p = np.asarray(points, dtype=np.float64)
    lips = (face_geo.MOUTH_INNER_TOP, face_geo.MOUTH_INNER_BOTTOM)
    lips += (face_geo.MOUTH_LEFT_CORNER, face_geo.MOUTH_RIGHT_CORNER)
    top, bottom, left, right = (GEOMETRY_POINTS.index(i) for i in lips)
    gap = np.linalg.norm(p[:, top] - p[:, bottom], axis=-1)
    width = np.linalg.norm(p[:, left] - p[:, right], axis=-1)
    return gap / (width + 1e-9)


def lipsync_correlation(mouth: np.ndarray, rms: np.ndarray, max_lag: int = 3) -> tuple[float | None, int]:
    """Best Pearson r between per-frame mouth opening and audio RMS over lags in [-max_lag, max_lag].

    lag > 0 means the audio comes later than the mouth (mouth[t] is paired with rms[t + lag]). Frames where the mouth
    is NaN (no face) are left out. Returns (None, 0) when fewer than 8 valid pairs remain or a series is constant.
    """
    m, a = np.asarray(mouth, dtype=np.float64), np.asarray(rms, dtype=np.float64)
    n = min(len(m), len(a))
    m, a = m[:n], a[:n]
    best_r, best_lag = None, 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            x, y = m[: n - lag], a[lag:]
        else:
            x, y = m[-lag:], a[: n + lag]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 8 or np.std(x[ok]) < 1e-12 or np.std(y[ok]) < 1e-12:
            continue
        r = float(np.corrcoef(x[ok], y[ok])[0, 1])
        if best_r is None or r > best_r:
            best_r, best_lag = r, lag
    return best_r, best_lag


# ------------------------------------------------------------------------------------------------------- CPBD
CPBD_BETA = 3.6
CPBD_BLOCK = 64
CPBD_EDGE_BLOCK_SHARE = 0.002
CPBD_MAX_MARGIN = 100


def _sobel_vertical_edges(image: np.ndarray) -> np.ndarray:
    """Vertical-edge map as MATLAB/Octave edge(I, 'sobel', 'vertical'): squared horizontal Sobel response above
    the automatic threshold, thinned to local maxima along rows or columns."""
    kernel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64) / 8.0
    strength = cv2.filter2D(image, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT) ** 2
    thresh = 2.0 * np.sqrt(np.mean(strength))  # Octave's default cutoff, compared against the squared strength
    strength[strength <= thresh] = 0.0
    zc = np.zeros((strength.shape[0], 1))
    zr = np.zeros((1, strength.shape[1]))
    x = (strength > np.hstack([zc, strength[:, :-1]])) & (strength > np.hstack([strength[:, 1:], zc]))
    y = (strength > np.vstack([zr, strength[:-1, :]])) & (strength > np.vstack([strength[1:, :], zr]))
    return x | y


def _run_lengths(mask: np.ndarray, forward: bool) -> np.ndarray:
    """Per pixel, the number of consecutive True along the row starting at it, walking right (forward) or left."""
    out = np.zeros(mask.shape, dtype=np.int64)
    cols = range(mask.shape[1] - 1, -1, -1) if forward else range(mask.shape[1])
    prev = np.zeros(mask.shape[0], dtype=np.int64)
    for c in cols:
        prev = np.where(mask[:, c], prev + 1, 0)
        out[:, c] = prev
    return out


def _edge_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano edge widths at vertical edge pixels (0 elsewhere): the extent of the monotonic intensity ramp
    on both sides of the edge, along the row, for edges whose gradient direction quantises to 0 or 180 degrees."""
    h, w = image.shape
    gy, gx = np.gradient(image)
    angle = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), np.where(gy == 0, 0.0, 90.0))
    q = 45.0 * np.round(angle / 45.0)
    d = np.diff(image, axis=1)  # d[:, k] = I[:, k + 1] - I[:, k]
    inc, dec = d > 0, d < 0
    run_left_inc, run_left_dec = _run_lengths(inc, forward=False), _run_lengths(dec, forward=False)
    run_right_inc, run_right_dec = _run_lengths(inc, forward=True), _run_lengths(dec, forward=True)

    widths = np.zeros_like(image)
    rows, cols = np.nonzero(edges)
    keep = (rows >= 1) & (rows < h - 1) & (cols >= 1) & (cols < w - 1)
    rows, cols = rows[keep], cols[keep]
    qa = q[rows, cols]

    def walk(run: np.ndarray, start: np.ndarray) -> np.ndarray:
        # steps taken from `start` (a difference index) before the ramp stops, as in the reference loop
        valid = (start >= 0) & (start < w - 1)
        steps = np.where(valid, run[rows, np.clip(start, 0, w - 2)], 0)
        return np.minimum(steps, CPBD_MAX_MARGIN) + 1

    falling = (qa == 180) | (qa == -180)  # intensity decreases left to right across the edge
    rising = qa == 0
    left = np.where(falling, walk(run_left_dec, cols - 2), walk(run_left_inc, cols - 2))
    right = np.where(falling, walk(run_right_dec, cols + 1), walk(run_right_inc, cols + 1))
    sel = falling | rising
    widths[rows[sel], cols[sel]] = (left + right)[sel]
    return widths


def cpbd(image: np.ndarray) -> float:
    """Cumulative probability of blur detection (Narvekar & Karam 2011), a no-reference sharpness in [0, 1]
    (higher = sharper), on the grayscale of an RGB uint8 image.

    Canny edges choose the 64x64 edge blocks (more than 0.2% edge pixels); Sobel vertical edges give Marziliano
    widths; per block the just-noticeable width is 5 px (contrast <= 50) or 3 px; P_blur = 1 - exp(-(w/w_JNB)^3.6);
    CPBD = share of edges with P_blur <= 0.63. Images smaller than one block are scored as one block.
    """
    from skimage.feature import canny

    img = np.asarray(image)
    gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    gray = gray.astype(np.float64)
    canny_edges = canny(gray / 255.0)
    widths = _edge_widths(gray, _sobel_vertical_edges(gray))
    h, w = gray.shape
    bh, bw = min(CPBD_BLOCK, h), min(CPBD_BLOCK, w)
    hist = np.zeros(101)
    total = 0
    for i in range(h // bh):
        for j in range(w // bw):
            rs, cs = slice(bh * i, bh * (i + 1)), slice(bw * j, bw * (j + 1))
            if np.count_nonzero(canny_edges[rs, cs]) <= bh * bw * CPBD_EDGE_BLOCK_SHARE:
                continue
            block_w = widths[rs, cs]
            block_w = block_w[block_w != 0]
            contrast = gray[rs, cs].max() - gray[rs, cs].min()
            jnb = 5.0 if int(contrast) <= 50 else 3.0
            p_blur = 1.0 - np.exp(-(np.abs(block_w / jnb) ** CPBD_BETA))
            np.add.at(hist, np.rint(p_blur * 100).astype(int), 1)
            total += len(block_w)
    if total == 0:
        return 0.0
    return float(hist[:64].sum() / total)


# -------------------------------------------------------------------------------------------------------- FID
class InceptionFeatures:
    """2048-D pool3 features of the FID Inception network (TorchScript), 299x299 bilinear, input in [-1, 1]."""

    def __init__(self, weights: str | Path, device: str = "cpu", batch_size: int = 16) -> None:
        self.weights = Path(weights)
        self.model = load_inception(self.weights, device)
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, 2048) float64 features of uint8 RGB images (N, H, W, 3)."""
        feats = []
        for i in range(0, len(images), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + self.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
            feats.append(self.model(x).reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(feats) if feats else np.zeros((0, 2048))


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples).

    tr sqrt(S1 S2) is computed as tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix with the same eigenvalues, by two
    symmetric eigendecompositions: exact, and seconds instead of minutes for 2048-D features (scipy's general
    sqrtm), also when few samples make the covariances singular.
    """
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = s1_half @ s2 @ s1_half
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    # a tiny negative value is round-off of equal distributions
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean))


# ------------------------------------------------------------------------------------------------ identity (CSIM)
CSIM_NAME = (
    "CSIM: cosine similarity of dlib face-recognition embeddings (ResNet, 128-d, apb2face.data.identity; the "
    "embedding generate uses to tell whether a photo is one of the checkpoint's people)"
)


def face_embeddings(frames: Sequence[np.ndarray], embedder: FaceEmbedder, indices: Iterable[int]) -> np.ndarray:
    """(n, 128) embeddings of the frames at `indices`; the other rows, and frames without a face, are NaN."""
    out = np.full((len(frames), EMBEDDING_SIZE), np.nan, np.float32)
    for i in indices:
        vector = embedder.embed(frames[i])
        if vector is not None:
            out[i] = vector
    return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of paired embeddings ((n, d) each, or one (d,) broadcast); NaN where a row is NaN."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
