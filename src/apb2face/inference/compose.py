"""Paste-back: put a generated face crop into a full video frame without a visible seam.

For each frame, given the generated crop, the crop box it belongs to (source pixels, smoothed in time) and the real
face's landmarks in that frame:

1. `warp_crop`        the crop is scaled into the box, only over the box's part of the frame (the ROI)
2. `region_mask`      a mask from the landmarks: the face oval's hull (`face`), or its part below the nose (`mouth`,
                      so the real eyes and brows stay), pulled inwards and feathered with a Gaussian
3. `ColourMatcher`    the generated pixels get the mean / std (in Lab) of the real skin in a band along the inside
                      of the mask edge, smoothed over frames so the tone does not flicker
4. `paste`            alpha blend inside the ROI; every pixel outside the ROI is the frame's own, byte for byte

`smooth_track` smooths a box track (centre x, y, side) with a centred Gaussian inside each run of frames where a
face was found, so the pasted face does not jitter with the detector and does not lag behind the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from apb2face.data.face import CropBox
from apb2face.errors import UserError
from apb2face.models.config import FACE_OVAL

REGIONS = ("face", "mouth")
# landmarks the paste needs from each frame: the face oval, then the points that place the mouth region's top line
# (below the nose, across the face: subnasale and the two outer eye corners give the face's "down" direction)
SUBNASALE, RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 2, 33, 263
PASTE_POINTS: tuple[int, ...] = (*FACE_OVAL, SUBNASALE, RIGHT_EYE_OUTER, LEFT_EYE_OUTER)
NUM_OVAL = len(FACE_OVAL)
MASK_WORK_SIDE = 192  # px: masks and colour statistics are computed at about this size, whatever the face's


@dataclass(frozen=True)
class ComposeConfig:
    """How a generated face is pasted. Lengths are fractions of the crop box side, so they scale with the face."""

    region: str = "face"  # "face": the whole face oval; "mouth": the lower face from just below the nose down
    erode: float = 0.025  # the mask edge is pulled this far inside the landmark hull (hides the hull's corners)
    feather: float = 0.03  # Gaussian sigma of the mask edge
    mouth_offset: float = 0.0  # the mouth region's top line, below (+) or above (-) the subnasale point; the
    # blend reaches 2.3 % at that line (eyes, brows and the nose above it stay the frame's own)
    colour_match: bool = True  # match the generated skin to the real skin along the mask edge, per frame
    colour_band: float = 0.06  # width of that band, inside the mask edge
    colour_smoothing: float = 0.6  # weight of the previous frames' statistics (0: per frame, no memory)
    max_std_ratio: float = 1.5  # the contrast change is clipped to [1/x, x]

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise UserError(f"region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        for name in ("erode", "feather", "colour_band"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.25:
                raise UserError(f"{name} must be a fraction of the box side in [0, 0.25], got {value:g}")
        if not -0.25 <= self.mouth_offset <= 0.25:
            raise UserError(f"mouth_offset must lie in [-0.25, 0.25], got {self.mouth_offset:g}")
        if not 0.0 <= self.colour_smoothing < 1.0:
            raise UserError(f"colour_smoothing must lie in [0, 1), got {self.colour_smoothing:g}")
        if not self.max_std_ratio >= 1.0:
            raise UserError(f"max_std_ratio must be at least 1, got {self.max_std_ratio:g}")


@dataclass(frozen=True)
class Roi:
    """A rectangle of frame pixels [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def view(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0 : self.y1, self.x0 : self.x1]


@dataclass(frozen=True)
class Pasted:
    """What `paste` changed: the ROI and the blending mask over it (float32 in [0, 1], 0 = the frame's pixel)."""

    roi: Roi
    mask: np.ndarray

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask over the whole frame (H, W) float32."""
        out = np.zeros(shape, np.float32)
        if not self.roi.empty:
            self.roi.view(out)[...] = self.mask
        return out


def box_roi(box: CropBox, shape: tuple[int, int]) -> Roi:
    """The box's pixels, clipped to a frame of `shape` (H, W)."""
    h, w = shape
    half = box.side / 2
    return Roi(
        max(0, int(np.floor(box.cx - half))),
        max(0, int(np.floor(box.cy - half))),
        min(w, int(np.ceil(box.cx + half))),
        min(h, int(np.ceil(box.cy + half))),
    )


def warp_crop(crop: np.ndarray, box: CropBox, roi: Roi) -> np.ndarray:
    """The (S, S, 3) crop scaled into `box`, over the ROI's pixels only (the inverse of `face.crop_image`)."""
    size = crop.shape[0]
    s = box.side / size
    # crop pixel (u, v) -> source (cx - side/2 + s u, ...); shifted so the ROI's corner is (0, 0)
    m = np.array(
        [[s, 0.0, box.cx - box.side / 2 - roi.x0], [0.0, s, box.cy - box.side / 2 - roi.y0]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        crop,
        m,
        (roi.x1 - roi.x0, roi.y1 - roi.y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def region_mask(points: np.ndarray, box: CropBox, roi: Roi, config: ComposeConfig) -> np.ndarray:
    """The feathered blending mask over the ROI, float32 in [0, 1], from `PASTE_POINTS` landmarks in frame pixels
    (P, 2+). Built at a working resolution of about MASK_WORK_SIDE px (the mask is smooth: a 1080p face costs what
    a 256 px one does) and scaled up to the ROI."""
    shape = (roi.y1 - roi.y0, roi.x1 - roi.x0)
    scale = min(1.0, MASK_WORK_SIDE / max(shape))
    small = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
    local = (points[:, :2] - (roi.x0, roi.y0)) * scale
    side = box.side * scale
    core = erode(hull_mask(local[:NUM_OVAL], small), config.erode * side).astype(np.float32)
    if config.region == "mouth":
        # the hard edge sits two feather sigmas below the line, so the blend above the line is under 2.3 %
        core *= below_line(local, small, (config.mouth_offset + 2 * config.feather) * side)
    mask = feather(core, config.feather * side)
    if small != shape:
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return mask


def erode(mask: np.ndarray, radius: float) -> np.ndarray:
    """uint8 (0/1) mask shrunk by `radius` px (a Euclidean distance transform: any radius at one cost)."""
    if radius < 0.5:
        return mask
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (inside > radius).astype(np.uint8)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (0/1) convex hull of (N, 2) points, in an image of `shape`."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def below_line(points: np.ndarray, shape: tuple[int, int], offset: float) -> np.ndarray:
    """1 below the line through the subnasale point perpendicular to the face's vertical axis (the eye line's
    normal, so a rolled head keeps its eyes), moved `offset` px down it; 0 above. `points` (PASTE_POINTS) are in
    the coordinates of an image of `shape`; float32 of `shape`."""
    across = points[-1, :2] - points[-2, :2]  # right eye outer corner -> left eye outer corner
    across = across / max(float(np.linalg.norm(across)), 1e-6)
    down = np.array([-across[1], across[0]])  # image y grows downwards: the eye line turned by +90 degrees
    if down[1] < 0:
        down = -down
    origin = points[-3, :2] + offset * down
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return (((xs - origin[0]) * down[0] + (ys - origin[1]) * down[1]) >= 0).astype(np.float32)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A hard mask softened by a Gaussian of `sigma` px (no change for sigma < 0.5)."""
    if sigma < 0.5:
        return mask.astype(np.float32)
    k = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(mask.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_CONSTANT)


class ColourMatcher:
    """Per-frame colour transfer of the generated face to the real skin around it: mean and std per Lab channel in
    a band along the inside of the mask edge (skin in both images), as an exponential moving average over frames so
    the correction does not flicker. The statistics are read at the mask's working resolution and the correction
    is applied to the model's small crop, before it is scaled up. `reset()` at a cut (frames without a face)."""

    def __init__(self, config: ComposeConfig) -> None:
        self.config = config
        self._stats: np.ndarray | None = None  # (2, 2, 3): (generated, real) x (mean, std) x Lab

    def reset(self) -> None:
        self._stats = None

    def update(self, generated: np.ndarray, real: np.ndarray, mask: np.ndarray, side: float) -> bool:
        """Add one frame's statistics: `generated` and `real` RGB uint8 images of the same place, `mask` the blend
        mask over them, `side` the box side in their pixels. False when the band is too small to read."""
        band = self.band(mask, side)
        if int(band.sum()) < 16:
            return False
        stats = np.stack([_mean_std(cv2.cvtColor(img, cv2.COLOR_RGB2LAB), band) for img in (generated, real)])
        keep = self.config.colour_smoothing
        self._stats = stats if self._stats is None else keep * self._stats + (1 - keep) * stats
        return True

    def apply(self, image: np.ndarray) -> np.ndarray:
        """`image` (RGB uint8, any size) with the current correction; unchanged before the first update."""
        if self._stats is None:
            return image
        (g_mean, g_std), (r_mean, r_std) = self._stats.astype(np.float32)
        limit = self.config.max_std_ratio
        gain = np.clip(r_std / np.maximum(g_std, 1e-3), 1 / limit, limit)
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
        out = (lab - g_mean) * gain + r_mean
        return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)

    def __call__(self, generated: np.ndarray, real: np.ndarray, mask: np.ndarray, side: float) -> np.ndarray:
        """`generated` matched to `real` in one step (update + apply)."""
        self.update(generated, real, mask, side)
        return self.apply(generated)

    def band(self, mask: np.ndarray, side: float) -> np.ndarray:
        """uint8 (0/1) band of width colour_band x side inside the mask's half-level edge."""
        core = (mask >= 0.5).astype(np.uint8)
        return core - erode(core, max(1.0, self.config.colour_band * side))


def _mean_std(image: np.ndarray, band: np.ndarray) -> np.ndarray:
    mean, std = cv2.meanStdDev(image, mask=band)
    return np.stack([mean[:, 0], std[:, 0]])


def paste(
    frame: np.ndarray,
    crop: np.ndarray,
    box: CropBox,
    points: np.ndarray,
    config: ComposeConfig,
    colour: ColourMatcher | None = None,
) -> Pasted:
    """Blend the generated `crop` into `frame` (H, W, 3 uint8, changed in place) inside `box`, masked by the region
    of the `PASTE_POINTS` landmarks `points` (frame pixels). Returns what was changed."""
    roi = box_roi(box, frame.shape[:2])
    if roi.empty:
        return Pasted(roi, np.zeros((0, 0), np.float32))
    mask = region_mask(points, box, roi, config)
    real = roi.view(frame)
    if colour is not None and config.colour_match:
        # statistics at the working resolution, the correction on the small crop
        scale = min(1.0, MASK_WORK_SIDE / max(mask.shape))
        small = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        shrink = (lambda image: cv2.resize(image, small, interpolation=cv2.INTER_AREA)) if scale < 1 else np.asarray
        small_box = CropBox((box.cx - roi.x0) * scale, (box.cy - roi.y0) * scale, box.side * scale)
        small_roi = Roi(0, 0, small[0], small[1])
        colour.update(warp_crop(crop, small_box, small_roi), shrink(real), shrink(mask), box.side * scale)
        crop = colour.apply(crop)
    generated = warp_crop(crop, box, roi)
    # where the mask is 0 the blend gives the frame's own pixel: blending only the mask's bounding rectangle gives
    # the same frame for about half the work (the face oval fills about half of its box, the mouth region less)
    x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
    if w and h:
        inside = (slice(y, y + h), slice(x, x + w))
        weight = mask[inside]
        real[inside] = cv2.blendLinear(generated[inside], real[inside], weight, 1.0 - weight)
    return Pasted(roi, mask)


# ------------------------------------------------------------------------------------------------ box smoothing


def smooth_track(values: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing of a (N, C) track within each run of consecutive `found` frames (runs never mix
    across a gap, and frames near a run's ends average only the frames that exist: no lag, no pull towards zero).
    Rows outside the runs are returned unchanged."""
    values = np.asarray(values, np.float64)
    out = values.copy()
    if sigma <= 0 or len(values) == 0:
        return out
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    for lo, hi in runs(np.asarray(found, bool)):
        seg = values[lo:hi]
        weight = np.convolve(np.ones(hi - lo), kernel, mode="full")[radius : radius + hi - lo]
        for c in range(values.shape[1]):
            out[lo:hi, c] = np.convolve(seg[:, c], kernel, mode="full")[radius : radius + hi - lo] / weight
    return out


def runs(found: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) of each run of True values."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def high_pass_jitter(track: np.ndarray, found: np.ndarray | None = None) -> float:
    """Mean frame-to-frame jitter of a (N, C) box track in px/frame: the size of its second difference (what is
    left after removing steady motion), averaged over frames whose neighbours are all found."""
    track = np.asarray(track, np.float64)
    if len(track) < 3:
        return 0.0
    ok = np.ones(len(track), bool) if found is None else np.asarray(found, bool)
    valid = ok[:-2] & ok[1:-1] & ok[2:]
    if not valid.any():
        return 0.0
    second = track[2:] - 2 * track[1:-1] + track[:-2]
    return float(np.linalg.norm(second[valid], axis=1).mean() / 2.0)
