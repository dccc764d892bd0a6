"""The faces of the built-in people: a public-domain base portrait, reshaped and repainted for each identity.

`build_identity` edits the portrait in steps (each its own function below): bring it to about output resolution,
find the skin and the hair, tone the skin, paint hair, lips, irises and facial hair, put the person on the identity's
background; then `face_render.build_model` turns the texture and the reshaped mesh into a renderable `FaceModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.synth import face_render
from apb2face.data.synth.face_render import FaceModel
from apb2face.data.synth.identities import IdentitySpec


@dataclass(frozen=True)
class BaseFace:
    """A base portrait and what is measured on it once."""

    image: np.ndarray  # RGB uint8
    points: np.ndarray  # (478, 3) mediapipe pixels
    person: np.ndarray  # float32 (H, W) person mask 0..1


def _photo(name: str) -> np.ndarray:
    """The RGB portrait `name` from the package that ships it."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        return np.ascontiguousarray(
            np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg")))[..., :3]
        )
    raise ValueError(f"unknown base face {name!r}")


@lru_cache(maxsize=4)
def base_face(name: str, mirrored: bool) -> BaseFace:
    """A base portrait with its mediapipe mesh and person mask (computed once per process)."""
    import mediapipe as mp

    image = _photo(name)
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
    with face.FaceMesh(video=False) as mesh:
        points = mesh.detect(image)
    if points is None:
        raise RuntimeError(f"mediapipe found no face in the {name} portrait")
    with face.native_stderr_silenced(), mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        person = seg.process(image).segmentation_mask.astype(np.float32)
    # quantise so that tiny float differences between runs cannot change any output byte
    points = np.round(points.astype(np.float64) * 64) / 64
    person = np.round(cv2.GaussianBlur(person, (0, 0), 2.0) * 255) / 255
    return BaseFace(image=image, points=points, person=person.astype(np.float32))


def shape_warp(canon: np.ndarray, spec: IdentitySpec) -> np.ndarray:
    """Face-shape variation on canonical points: overall width, jaw width, chin length."""
    p = canon.copy()
    y_eye = canon[[face.RIGHT_EYE_OUTER, face.LEFT_EYE_OUTER], 1].mean()
    y_mouth = canon[[face.MOUTH_LEFT_CORNER, face.MOUTH_RIGHT_CORNER], 1].mean()
    y_chin = canon[face.CHIN, 1]
    lower = face_render.smoothstep(y_eye, y_chin, canon[:, 1])
    p[:, 0] *= spec.face_width * (1 + (spec.jaw_width - 1) * lower)
    p[:, 1] += (spec.chin_length - 1) * np.clip(canon[:, 1] - y_mouth, 0, None)
    # rest with closed lips (a portrait may smile with parted lips): upper and lower inner lip meet halfway
    upper = face_render.LIPS_INNER_UPPER[1:-1]
    lower = face_render.LIPS_INNER_LOWER[::-1][1:-1]
    mid = 0.5 * (p[upper] + p[lower])
    p[upper], p[lower] = mid, mid
    return p


def poly_mask(shape: tuple[int, int], polys: list[np.ndarray], blur: float = 0.0) -> np.ndarray:
    """Float mask 0..1 of the filled polygons (anti-aliased, sub-pixel), optionally blurred by `blur` pixels."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(p * 16).astype(np.int32) for p in polys], 255, cv2.LINE_AA, shift=4)
    m = m.astype(np.float32) / 255
    return cv2.GaussianBlur(m, (0, 0), blur) if blur > 0 else m


def recolour(img: np.ndarray, mask: np.ndarray, colour: tuple, keep_light: float = 1.0) -> np.ndarray:
    """Paint `colour` into `mask`, modulated by the local lightness (texture and shading survive)."""
    grey = img.mean(2)
    ref = float(np.median(grey[mask > 0.5])) if np.any(mask > 0.5) else float(grey.mean())
    shade = (grey / max(ref, 1.0)) ** keep_light
    painted = np.asarray(colour, np.float32)[None, None] * shade[..., None]
    m = mask[..., None]
    return img * (1 - m) + np.clip(painted, 0, 255) * m


@dataclass
class Portrait:
    """The base portrait at about output resolution, being repainted: float RGB, person mask and mesh pixels."""

    image: np.ndarray  # (H, W, 3) float32 RGB
    person: np.ndarray  # (H, W) float32 0..1
    points: np.ndarray  # (478, 2) mesh points in this image's pixels
    scale: float  # output pixels per canonical unit (sizes of painted features scale with it)

    @property
    def hw(self) -> tuple[int, int]:
        return self.image.shape[:2]


def portrait_at_output_scale(base: BaseFace, factor: float, scale: float) -> Portrait:
    """The portrait resized by `factor` (texture at about output resolution: the warp then samples ~1:1)."""
    h, w = base.image.shape[:2]
    tsize = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    image = cv2.resize(base.image, tsize, interpolation=interpolation).astype(np.float32)
    person = cv2.resize(base.person, tsize, interpolation=cv2.INTER_LINEAR)
    return Portrait(image=image, person=person, points=base.points[:, :2] * factor, scale=scale)


def skin_mask(p: Portrait, lab: np.ndarray) -> np.ndarray:
    """Pixels whose colour is close to the cheeks'/forehead's, on the person, plus the face oval; not the lips and
    eyes (soft, 0..1)."""
    pts = p.points
    samples = []
    for idx in (50, 280, 151, 205, 425, 108, 337):
        x, y = np.round(pts[idx]).astype(int)
        r = max(2, int(0.06 * p.scale))
        samples.append(lab[max(0, y - r) : y + r, max(0, x - r) : x + r].reshape(-1, 3))
    ref = np.median(np.concatenate(samples), axis=0)
    dist = np.sqrt(0.3 * (lab[..., 0] - ref[0]) ** 2 + (lab[..., 1] - ref[1]) ** 2 + (lab[..., 2] - ref[2]) ** 2)
    skin = np.exp(-((dist / 16.0) ** 2)) * p.person
    features = poly_mask(
        p.hw,
        [
            pts[face_render.LIPS_OUTER],
            pts[face_render.RIGHT_UPPER_LID + face_render.RIGHT_LOWER_LID[::-1]],
            pts[face_render.LEFT_UPPER_LID + face_render.LEFT_LOWER_LID[::-1]],
        ],
        blur=1.0,
    )
    oval = poly_mask(p.hw, [pts[face_render.FACE_OVAL]], blur=0.02 * p.scale)
    skin = np.maximum(skin, 0.85 * oval) * (1 - features)
    return cv2.GaussianBlur(skin, (0, 0), 1.5)


def hair_mask(p: Portrait, skin: np.ndarray) -> np.ndarray:
    """On the person, not skin, inside the head outline, above the mouth, outside the face (soft, 0..1)."""
    oval_pts = p.points[face_render.FACE_OVAL]
    c = oval_pts.mean(0)
    head = poly_mask(p.hw, [c + 1.7 * (oval_pts - c)], blur=0.05 * p.scale)
    y_mouth = p.points[[face.MOUTH_LEFT_CORNER, face.MOUTH_RIGHT_CORNER], 1].mean()
    above = (np.arange(p.hw[0], dtype=np.float32)[:, None] < y_mouth).astype(np.float32) * np.ones(p.hw, np.float32)
    above = cv2.GaussianBlur(above, (0, 0), 0.1 * p.scale)
    inner_oval = poly_mask(p.hw, [c + 0.93 * (oval_pts - c)], blur=0.02 * p.scale)
    hair = np.clip(p.person * head * above * (1 - inner_oval) - 0.8 * skin, 0, 1)
    return cv2.GaussianBlur(hair, (0, 0), 1.0)


def tone_skin(image: np.ndarray, lab: np.ndarray, skin: np.ndarray, tone: tuple[float, float, float]) -> np.ndarray:
    """Skin tone in CIELAB: lightness scaled, chroma shifted, only where the skin mask is."""
    lab2 = lab.copy()
    lab2[..., 0] = np.clip(lab2[..., 0] * tone[0], 0, 255)
    lab2[..., 1] = np.clip(lab2[..., 1] + tone[1], 0, 255)
    lab2[..., 2] = np.clip(lab2[..., 2] + tone[2], 0, 255)
    toned = cv2.cvtColor(lab2.astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    return image * (1 - skin[..., None]) + toned * skin[..., None]


def paint_lips(p: Portrait, colour: tuple) -> np.ndarray:
    pts = p.points
    lips = poly_mask(p.hw, [pts[face_render.LIPS_OUTER]], blur=0.8) * (
        1 - poly_mask(p.hw, [pts[face_render.LIPS_INNER_UPPER + face_render.LIPS_INNER_LOWER[1:-1]]])
    )
    return recolour(p.image, lips * 0.7, colour, keep_light=0.9)


def paint_irises(p: Portrait, colour: tuple) -> np.ndarray:
    """Iris disks (from the mesh's iris points) in `colour`, clipped by the eyelids."""
    pts, img = p.points, p.image
    for iris_ids, lids in (
        (face_render.RIGHT_IRIS, face_render.RIGHT_UPPER_LID + face_render.RIGHT_LOWER_LID[::-1]),
        (face_render.LEFT_IRIS, face_render.LEFT_UPPER_LID + face_render.LEFT_LOWER_LID[::-1]),
    ):
        centre = pts[iris_ids[0]]
        radius = float(np.linalg.norm(pts[iris_ids[1:]] - centre, axis=1).mean())
        disk = np.zeros(p.hw, np.uint8)
        cv2.circle(disk, tuple(np.round(centre * 16).astype(int)), int(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
        iris = disk.astype(np.float32) / 255 * poly_mask(p.hw, [pts[lids]])
        img = recolour(img, iris * 0.75, colour, keep_light=1.0)
    return img


def paint_facial_hair(p: Portrait, spec: IdentitySpec) -> np.ndarray:
    """Beard and/or moustache in a darker hair colour with a fixed per-identity grain, painted into the texture so
    that it moves with the jaw."""
    if "beard" not in spec.accessories and "moustache" not in spec.accessories:
        return p.image
    pts, hw, scale = p.points, p.hw, p.scale
    rng = np.random.default_rng([ord(ch) for ch in spec.name])
    noise = cv2.GaussianBlur(rng.random(hw).astype(np.float32), (0, 0), 0.6)
    noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
    mask = np.zeros(hw, np.float32)
    if "beard" in spec.accessories:
        jaw = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]
        lower_lip = pts[face_render.LIPS_OUTER_LOWER[::-1]] + np.array([0, 0.04 * scale])
        cheek = [pts[361] + np.array([0, -0.25 * scale]), pts[132] + np.array([0, -0.25 * scale])]
        poly = np.concatenate([pts[jaw], [cheek[0]], lower_lip, [cheek[1]]])
        mask = np.maximum(mask, poly_mask(hw, [poly], blur=0.03 * scale))
    if "moustache" in spec.accessories:
        upper = pts[[61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]]
        top = upper[::-1] - np.array([0, 0.13 * scale])
        poly = np.concatenate([upper + np.array([0, -0.01 * scale]), top])
        mask = np.maximum(mask, poly_mask(hw, [poly], blur=0.02 * scale))
    colour = np.asarray(spec.hair, np.float32) * 0.8
    m = (mask * (0.55 + 0.45 * noise))[..., None]
    return p.image * (1 - m) + (colour * (0.6 + 0.6 * noise[..., None])) * m


def place_on_background(p: Portrait, colour: tuple[int, int, int]) -> np.ndarray:
    """The person over a soft vertical gradient of `colour`."""
    grad = np.linspace(1.1, 0.8, p.hw[0], dtype=np.float32)[:, None, None]
    bg = np.clip(np.asarray(colour, np.float32)[None, None] * grad, 0, 255)
    bg = np.broadcast_to(bg, p.image.shape)
    return p.image * p.person[..., None] + bg * (1 - p.person[..., None])


def accessory_colours(spec: IdentitySpec) -> dict:
    """The drawn accessories (glasses, hat, earrings) the identity wears, with their colours."""
    keys = {"glasses": "glasses_colour", "hat": "hat_colour", "earrings": "earring_colour"}
    return {name: spec.extras[key] for name, key in keys.items() if name in spec.accessories}


def build_identity(spec: IdentitySpec, size: int, zoom: float = 1.0) -> FaceModel:
    """The renderable face of one identity: base portrait edited (background, skin, hair, eyes, lips, facial hair)
    and its mesh reshaped. `zoom` < 1 frames a wider view than the dataset's face crop (`face_render.frame_geometry`:
    the avatar clips of the built-in people)."""
    base = base_face(spec.base, spec.mirrored)
    canon, origin, basis, iod, shape, scale = _geometry(base, spec, size, zoom)
    factor = scale / iod
    p = portrait_at_output_scale(base, factor, scale)
    lab = cv2.cvtColor(np.clip(p.image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    skin = skin_mask(p, lab)
    hair = hair_mask(p, skin)
    p.image = tone_skin(p.image, lab, skin, spec.skin)
    p.image = recolour(p.image, hair * 0.9, spec.hair, keep_light=0.8)
    p.image = paint_lips(p, spec.lips)
    p.image = paint_irises(p, spec.iris)
    p.image = paint_facial_hair(p, spec)
    p.image = place_on_background(p, spec.background)
    texture = np.clip(p.image + 0.5, 0, 255).astype(np.uint8)
    return face_render.build_model(
        texture,
        origin * factor,
        basis,
        iod * factor,
        canon,
        shape,
        size,
        accessories=accessory_colours(spec),
        zoom=zoom,
    )


def photo_face(image: np.ndarray, points: np.ndarray) -> BaseFace:
    """A user's portrait as a base face: RGB uint8 and its (478, 3) mesh in its pixels (found by the caller, who
    knows how to find faces in any photo), with the person mask measured here."""
    import mediapipe as mp

    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    with face.native_stderr_silenced(), mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        person = seg.process(image).segmentation_mask.astype(np.float32)
    points = np.round(np.asarray(points, np.float64) * 64) / 64
    person = np.round(cv2.GaussianBlur(person, (0, 0), 2.0) * 255) / 255
    return BaseFace(image=image, points=points, person=person.astype(np.float32))


def build_photo_identity(base: BaseFace, spec: IdentitySpec, size: int) -> FaceModel:
    """The renderable face of a person from one photo, as photographed: nothing repainted, the lips closed at rest
    and the face shape as the spec says (1.0 everywhere keeps the photo's)."""
    canon, origin, basis, iod, shape, scale = _geometry(base, spec, size)
    factor = scale / iod
    p = portrait_at_output_scale(base, factor, scale)
    texture = np.clip(p.image + 0.5, 0, 255).astype(np.uint8)
    return face_render.build_model(texture, origin * factor, basis, iod * factor, canon, shape, size)


def _geometry(base: BaseFace, spec: IdentitySpec, size: int, zoom: float = 1.0) -> tuple:
    """(canon, origin, basis, iod, shape, scale): the base mesh frontalised, reshaped for the spec, and the output
    scale (pixels per canonical unit) at `size` and `zoom`."""
    canon, origin, basis, iod = face_render.frontalize(base.points)
    shape = shape_warp(canon, spec)
    scale, _ = face_render.frame_geometry(shape, size, zoom)
    return canon, origin, basis, iod, shape, scale
