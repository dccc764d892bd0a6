"""A textured 3D face that talks, blinks and turns: the renderer behind `apb2face synth`.

A base face is a public-domain portrait shipped in an installed package (scikit-image's `astronaut`, NASA; matplotlib's
`grace_hopper`, US Navy), optionally mirrored. mediapipe's face mesh is run once on it to get 478 3D points, which are
frontalised into a canonical frame (nose tip at the origin, unit inter-ocular distance, x right, y down, z away from
the camera). Rings of extra points around the face oval (hair, ears, neck) and fixed points on the image border make
the mesh cover the whole picture.

Per frame the canonical points are deformed (jaw drop, lip rounding/spreading, eyelid closure), rotated with
`face.rotation_matrix` about a pivot behind the face, projected orthographically, and the portrait texture is warped
triangle by triangle (back-to-front, back faces culled) onto the result with one `cv2.remap`. The mouth cavity (dark
interior, teeth, tongue) and accessories are drawn on top, anti-aliased. The ground truth is exact by construction:
landmarks = the projected deformed 478 points, pose = the applied rotation, eye openness = the applied lid closure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import Delaunay

from apb2face.data import face

# mediapipe face-mesh index loops (468-point topology)
FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
# eyelids from outer to inner corner; upper[i] closes onto lower[i]
RIGHT_UPPER_LID = [33, 246, 161, 160, 159, 158, 157, 173, 133]
RIGHT_LOWER_LID = [33, 7, 163, 144, 145, 153, 154, 155, 133]
LEFT_UPPER_LID = [263, 466, 388, 387, 386, 385, 384, 398, 362]
LEFT_LOWER_LID = [263, 249, 390, 373, 374, 380, 381, 382, 362]
RIGHT_UPPER_FOLD = [247, 30, 29, 27, 28, 56, 190]  # the skin ring just above the upper lid (moves with it, less)
LEFT_UPPER_FOLD = [467, 260, 259, 257, 258, 286, 414]
RIGHT_IRIS = list(range(468, 473))  # centre first
LEFT_IRIS = list(range(473, 478))

NUM_MESH = 478
RING_SCALES = (1.3, 1.9, 2.7)  # outer rings around the face oval (hair/ears, head outline, shoulders/background)
RING_FOLLOW = (1.0, 1.0, 0.4)  # how much of the head motion each ring follows (the rest stays with the torso)
PIVOT = np.array([0.0, 0.35, 1.6])  # head rotation centre in canonical units (behind and below the nose tip)
CROP_SCALE = 1.6  # frame side = CROP_SCALE x the frontal landmark bounding box (as face.crop_box_from_landmarks)


def frontalize(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Canonical points (N, 3) from detected pixel points (N, 3), and the way back: p = origin + iod * P @ basis."""
    origin = points[face.NOSE_TIP].astype(np.float64)
    p = points.astype(np.float64) - origin
    iod = float(np.linalg.norm(p[face.LEFT_EYE_OUTER] - p[face.RIGHT_EYE_OUTER]))
    p /= iod
    x_axis = p[face.LEFT_EYE_OUTER] - p[face.RIGHT_EYE_OUTER]
    x_axis /= np.linalg.norm(x_axis)
    down = p[face.CHIN] - p[face.FOREHEAD]
    z_axis = np.cross(x_axis, down)
    z_axis /= np.linalg.norm(z_axis)
    y_axis = np.cross(z_axis, x_axis)
    basis = np.stack([x_axis, y_axis, z_axis])
    return p @ basis.T, origin, basis, iod


@dataclass
class FaceModel:
    """Everything needed to render one identity: texture, canonical points (texture and shape), triangles."""

    size: int
    texture: np.ndarray  # (H, W, 3) uint8, already edited for the identity (skin, hair, background, ...)
    tex_points: np.ndarray  # (V, 2) float32 texture pixel of each vertex
    shape: np.ndarray  # (V, 3) canonical vertex positions of this identity (face-shape warps applied)
    follow: np.ndarray  # (V,) fraction of the head rotation each vertex follows (0 = fixed border)
    triangles: np.ndarray  # (T, 3) int32
    scale: float  # output pixels per canonical unit
    centre: np.ndarray  # (2,) output pixel of the canonical origin at pose 0
    jaw_weight: np.ndarray  # (V,) how far each vertex moves with the jaw
    tri_sign: np.ndarray  # (T,) orientation of each triangle in the rest layout (front-facing keeps it)
    accessories: dict = field(default_factory=dict)
    mouth_colour: tuple = (72, 18, 24)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 below e0, 1 above e1, a smooth cubic ramp between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def ring_points(canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rings of points around the face oval (canonical units) and how much head motion each follows."""
    oval = canon[FACE_OVAL]
    c = oval[:, :2].mean(0)
    pts, follow = [], []
    for scale, fol in zip(RING_SCALES, RING_FOLLOW):
        xy = c + scale * (oval[:, :2] - c)
        z = oval[:, 2] + 0.4 * (scale - 1.0)
        pts.append(np.column_stack([xy, z]))
        follow.append(np.full(len(oval), fol))
    return np.concatenate(pts), np.concatenate(follow)


def frame_geometry(canon: np.ndarray, size: int, zoom: float = 1.0) -> tuple[float, np.ndarray]:
    """Scale (px per unit) and canonical-origin pixel so that the frontal face fills the frame like a
    `face.crop_box_from_landmarks` crop does (`zoom` 1), or a smaller part of it around the same centre (`zoom`
    0.5: that crop is half the frame's side, and the frame shows the shoulders and the background around it)."""
    lo, hi = canon[:NUM_MESH, :2].min(0), canon[:NUM_MESH, :2].max(0)
    side = CROP_SCALE * float((hi - lo).max()) / zoom
    scale = size / side
    box_centre = (lo + hi) / 2 + np.array([0.0, 0.05 * (hi - lo)[1]])
    centre = np.array([size / 2, size / 2]) - scale * box_centre
    return scale, centre


def border_points(size: int, n: int = 6) -> np.ndarray:
    """Output pixels on (just outside) the image border; they never move."""
    t = np.linspace(-0.05 * size, 1.05 * size, n + 1)
    lo, hi = t[0], t[-1]
    pts = [(x, lo) for x in t] + [(x, hi) for x in t] + [(lo, y) for y in t[1:-1]] + [(hi, y) for y in t[1:-1]]
    return np.array(pts, dtype=np.float64)


def jaw_weights(canon: np.ndarray) -> np.ndarray:
    """How far each vertex moves down when the jaw opens (1 = lower lip), from its canonical position.

    Vertices below the lip line (the inner-lip contour, extended sideways from the corners) follow the jaw, fading
    out towards the ears; the upper lip and everything above stay."""
    line = canon[LIPS_INNER_UPPER, :2]
    line = line[np.argsort(line[:, 0])]
    y_line = np.interp(canon[:, 0], line[:, 0], line[:, 1])  # constant beyond the corners
    y_chin = canon[face.CHIN, 1]
    below = smoothstep(y_line + 0.01, y_line + 0.15 * (y_chin - y_line.mean()), canon[:, 1])
    lateral = 1.0 - smoothstep(0.45, 0.95, np.abs(canon[:, 0]))
    w = 0.9 * below * lateral
    # the lips: explicit, since closed lips share positions (upper stays, lower rides on the jaw, a bit further)
    w[LIPS_INNER_UPPER] = 0.0
    w[[LIPS_INNER_UPPER[0], LIPS_INNER_UPPER[-1]]] = 0.35  # corners stretch halfway
    w[LIPS_INNER_LOWER[1:-1]] = 1.0
    w[LIPS_OUTER_LOWER[1:-1]] = np.maximum(w[LIPS_OUTER_LOWER[1:-1]], 0.95)
    w[[face.MOUTH_LEFT_CORNER, face.MOUTH_RIGHT_CORNER]] = 0.35
    return w


def build_model(
    texture: np.ndarray,
    tex_origin: np.ndarray,
    tex_basis: np.ndarray,
    tex_scale: float,
    canon: np.ndarray,
    shape: np.ndarray,
    size: int,
    accessories: dict | None = None,
    mouth_colour: tuple = (72, 18, 24),
    zoom: float = 1.0,
) -> FaceModel:
    """Assemble a FaceModel. `canon` are the base face's canonical mesh points (478, 3), texture pixels are
    tex_origin + tex_scale * P @ tex_basis; `shape` is `canon` after this identity's face-shape warp; `zoom` frames
    it as `frame_geometry` says."""
    rings_c, ring_follow = ring_points(canon)
    rings_s, _ = ring_points(shape)
    scale, centre = frame_geometry(shape, size, zoom)
    border_px = border_points(size)
    border_c = np.column_stack([(border_px - centre) / scale, np.full(len(border_px), 2.0)])
    verts_c = np.concatenate([canon, rings_c, border_c])
    verts_s = np.concatenate([shape, rings_s, border_c])
    follow = np.concatenate([np.ones(len(canon)), ring_follow, np.zeros(len(border_c))])
    # texture coordinates of every vertex; border points sit where the frontal frame would show them
    tex = tex_origin[None, :2] + tex_scale * (verts_c @ tex_basis)[:, :2]
    # triangulate a mouth-open, eyes-open configuration so the gap between the lips gets its own triangles
    tri_config = verts_s.copy()
    jw_mesh = jaw_weights(shape)
    # the rings under the chin follow the jaw too (fully next to the face, less further out) so nothing folds
    jw_rings = np.concatenate([jw_mesh[FACE_OVAL] * k for k in (1.0, 0.6, 0.0)])
    jw = np.concatenate([jw_mesh, jw_rings, np.zeros(len(border_c))])
    tri_config[:, 1] += 0.3 * jw
    mesh_ids = np.r_[0:468, NUM_MESH : len(verts_s)]  # iris points ride on the eyeball; keep them out of the mesh
    tri = Delaunay(tri_config[mesh_ids, :2]).simplices
    triangles = mesh_ids[tri].astype(np.int32)
    tri_sign = np.sign(_signed_area(tri_config[triangles][..., :2]))
    return FaceModel(
        size=size,
        texture=texture,
        tex_points=tex.astype(np.float32),
        shape=verts_s,
        follow=follow,
        triangles=triangles,
        scale=scale,
        centre=centre,
        jaw_weight=jw,
        tri_sign=tri_sign,
        accessories=accessories or {},
        mouth_colour=mouth_colour,
    )


@dataclass(frozen=True)
class Expression:
    """Per-frame controls: jaw opening (canonical units), lip rounding/spreading (-1 spread ... 1 round), lid
    closure per eye (0 open ... 1 closed; left, right = the subject's), pose in degrees."""

    jaw: float = 0.0
    round: float = 0.0
    close_left: float = 0.0
    close_right: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0


def deform(model: FaceModel, e: Expression) -> np.ndarray:
    """Canonical vertex positions (V, 3) for one expression, before the head rotation."""
    v = model.shape.copy()
    mouth_c = v[[face.MOUTH_LEFT_CORNER, face.MOUTH_RIGHT_CORNER, face.MOUTH_INNER_TOP]].mean(0)
    v[:, 1] += e.jaw * model.jaw_weight
    # the upper lip lifts a little on wide openings (shows the upper teeth)
    v[LIPS_INNER_UPPER[1:-1], 1] -= 0.12 * e.jaw
    if e.round:
        d = np.linalg.norm((model.shape[:, :2] - mouth_c[:2]) / np.array([0.55, 0.35]), axis=1)
        near = np.exp(-d * d)[:NUM_MESH]
        amount = 0.28 * e.round if e.round > 0 else 0.12 * e.round
        v[:NUM_MESH, 0] -= amount * near * (v[:NUM_MESH, 0] - mouth_c[0])
        v[:NUM_MESH, 2] -= 0.08 * max(e.round, 0.0) * near
    for upper, lower, fold, close in (
        (RIGHT_UPPER_LID, RIGHT_LOWER_LID, RIGHT_UPPER_FOLD, e.close_right),
        (LEFT_UPPER_LID, LEFT_LOWER_LID, LEFT_UPPER_FOLD, e.close_left),
    ):
        if close <= 0:
            continue
        u, lo = v[upper[1:-1]].copy(), v[lower[1:-1]].copy()
        meet = u + 0.82 * (lo - u)
        du = close * (meet - u)
        v[upper[1:-1]] = u + du
        v[lower[1:-1]] = lo + close * (meet - lo)
        v[fold] += 0.35 * du
    return v


def project(model: FaceModel, verts: np.ndarray, e: Expression) -> tuple[np.ndarray, np.ndarray]:
    """Output pixels (V, 2) and depth (V,) of canonical vertices under the expression's head pose."""
    local = verts - PIVOT
    moved = np.empty_like(local)
    for fol in np.unique(model.follow):  # a few groups: the head, the shoulder ring (partial), the fixed border
        sel = model.follow == fol
        rot = face.rotation_matrix(e.yaw * fol, e.pitch * fol, e.roll * fol)
        moved[sel] = local[sel] @ rot.T
    world = moved + PIVOT
    xy = model.centre + model.scale * world[:, :2]
    return xy, world[:, 2]


def warp(model: FaceModel, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Backward-warp the texture onto the projected mesh: per pixel the front-most front-facing triangle."""
    s = model.size
    tri = model.triangles
    dst = xy[tri]  # (T, 3, 2)
    src = model.tex_points[tri].astype(np.float64)
    visible = _signed_area(dst) * model.tri_sign > 0.02  # back faces and collapsed triangles are skipped
    order = np.argsort(-depth[tri].mean(1), kind="stable")  # far first; near triangles overwrite
    order = order[visible[order]]
    ids = np.full((s, s), -1, dtype=np.int32)
    pts = np.round(dst * 16).astype(np.int32)
    for t in order:
        cv2.fillConvexPoly(ids, pts[t], int(t), lineType=cv2.LINE_8, shift=4)
    # affine (target pixel -> texture pixel) of each triangle: A [d1-d0, d2-d0] = [s1-s0, s2-s0]
    m = np.stack([dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]], axis=2)  # (T, 2, 2) columns = edges
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    det = np.where(np.abs(det) > 1e-9, det, 1e-9)
    inv = (
        np.stack([np.stack([m[:, 1, 1], -m[:, 0, 1]], 1), np.stack([-m[:, 1, 0], m[:, 0, 0]], 1)], 1)
        / det[:, None, None]
    )
    se = np.stack([src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]], axis=2)
    lin = se @ inv
    aff = np.concatenate([lin, (src[:, 0] - (lin @ dst[:, 0, :, None])[..., 0])[..., None]], axis=2)  # (T, 2, 3)
    holes = ids < 0
    if holes.any():  # pixels no visible triangle covers (cracks at folds) take their nearest neighbour's triangle
        from scipy.ndimage import distance_transform_edt

        _, (iy, ix) = distance_transform_edt(holes, return_indices=True)
        ids = ids[iy, ix]
    a = aff[ids].astype(np.float32)  # (S, S, 2, 3)
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32)
    map_x = a[..., 0, 0] * gx + a[..., 0, 1] * gy + a[..., 0, 2]
    map_y = a[..., 1, 0] * gx + a[..., 1, 1] * gy + a[..., 1, 2]
    return cv2.remap(model.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _signed_area(t: np.ndarray) -> np.ndarray:
    return 0.5 * (
        (t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1])
    )


def _blend_poly(image: np.ndarray, polys: list[np.ndarray], colour: tuple, alpha: float = 1.0) -> None:
    """Fill polygons anti-aliased with `colour` at `alpha`, in place (float image)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(p * 16).astype(np.int32) for p in polys], 255, lineType=cv2.LINE_AA, shift=4)
    a = (mask.astype(np.float32) / 255.0 * alpha)[..., None]
    image *= 1 - a
    image += a * np.asarray(colour, np.float32)


def draw_mouth(image: np.ndarray, xy: np.ndarray, model: FaceModel) -> None:
    """Mouth interior inside the inner-lip outline: dark cavity, upper teeth, tongue; anti-aliased, in place."""
    upper = xy[LIPS_INNER_UPPER]
    lower = xy[LIPS_INNER_LOWER]
    gap = float(np.linalg.norm(xy[face.MOUTH_INNER_TOP] - xy[face.MOUTH_INNER_BOTTOM]))
    if gap < 0.6:
        return
    cavity = np.concatenate([upper, lower[1:-1]])
    x0, y0 = np.floor(cavity.min(0)).astype(int) - 2
    x1, y1 = np.ceil(cavity.max(0)).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    off = np.array([x0, y0], np.float64)
    h, w = y1 - y0, x1 - x0
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round((cavity - off) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    layer = np.empty((h, w, 3), np.float32)
    layer[:] = model.mouth_colour
    width = float(np.linalg.norm(xy[LIPS_INNER_UPPER[0]] - xy[LIPS_INNER_UPPER[-1]]))
    # upper teeth: a band hanging from the upper inner lip, narrower than the mouth
    teeth_h = min(0.4 * gap, 0.1 * width)
    centre_x = upper[:, 0].mean()
    band = [p for p in upper if abs(p[0] - centre_x) < 0.36 * width]
    if len(band) >= 2:
        band = np.array(band)
        teeth = np.concatenate([band - np.array([0, 2.0]), (band + np.array([0, teeth_h]))[::-1]]) - off
        _blend_poly(layer, [teeth], (222, 214, 198))
    if gap > 0.25 * width:  # the tongue shows on wide openings
        bottom = xy[face.MOUTH_INNER_BOTTOM] - off
        axes = (int(0.28 * width * 16), int(0.22 * gap * 16))
        tongue = np.zeros((h, w), np.uint8)
        cv2.ellipse(
            tongue,
            (int(bottom[0] * 16), int((bottom[1] - 0.05 * gap) * 16)),
            axes,
            0,
            180,
            360,
            255,
            -1,
            cv2.LINE_AA,
            shift=4,
        )
        ta = (tongue.astype(np.float32) / 255.0)[..., None] * 0.9
        layer = layer * (1 - ta) + ta * np.array([170, 70, 80], np.float32)
    # darker towards the back of the mouth
    yy = (np.arange(h, dtype=np.float32)[:, None] + y0 - xy[face.MOUTH_INNER_TOP, 1]) / max(gap, 1.0)
    layer *= (0.75 + 0.25 * np.clip(np.abs(yy - 0.5) * 2, 0, 1))[..., None]
    a = (mask.astype(np.float32) / 255.0)[..., None]
    roi = image[y0:y1, x0:x1]
    roi *= 1 - a
    roi += a * layer


Project = Callable[[np.ndarray], np.ndarray]


def accessory_projection(model: FaceModel, e: Expression) -> Project:
    """Canonical points (N, 3) -> output pixels (N, 2) under the expression's head pose."""
    rot = face.rotation_matrix(e.yaw, e.pitch, e.roll)

    def proj(pts: np.ndarray) -> np.ndarray:
        return model.centre + model.scale * ((pts - PIVOT) @ rot.T + PIVOT)[:, :2]

    return proj


def draw_earrings(image: np.ndarray, model: FaceModel, proj: Project, colour: tuple) -> None:
    s, shape = model.scale, model.shape
    for idx, side in ((234, -1), (454, 1)):
        p = shape[idx] + np.array([0.04 * side, 0.42, 0.0])
        c = proj(p[None])[0]
        r = max(1.0, 0.055 * s)
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.circle(mask, (int(c[0] * 16), int(c[1] * 16)), int(r * 16), 255, -1, cv2.LINE_AA, shift=4)
        a = (mask.astype(np.float32) / 255.0)[..., None]
        image *= 1 - a
        image += a * np.asarray(colour, np.float32)


def draw_hat(image: np.ndarray, model: FaceModel, proj: Project, colour: tuple) -> None:
    shape = model.shape
    top = shape[FACE_OVAL, 1].min()
    half = 0.92 * float(np.abs(shape[FACE_OVAL, 0]).max())
    z = shape[face.FOREHEAD, 2] + 0.15
    crown = np.array(
        [
            [-half * 1.05, top + 0.12, z],
            [-half * 0.95, top - 0.6, z],
            [-half * 0.6, top - 0.85, z],
            [half * 0.6, top - 0.85, z],
            [half * 0.95, top - 0.6, z],
            [half * 1.05, top + 0.12, z],
        ]
    )
    brim = np.array(
        [
            [-half * 1.45, top + 0.2, z - 0.1],
            [half * 1.45, top + 0.2, z - 0.1],
            [half * 1.45, top + 0.05, z - 0.1],
            [-half * 1.45, top + 0.05, z - 0.1],
        ]
    )
    _blend_poly(image, [proj(crown)], colour)
    _blend_poly(image, [proj(brim)], tuple(0.7 * np.asarray(colour)))
    band = np.array(
        [
            [-half * 1.04, top + 0.06, z - 0.02],
            [half * 1.04, top + 0.06, z - 0.02],
            [half * 1.0, top - 0.12, z - 0.02],
            [-half * 1.0, top - 0.12, z - 0.02],
        ]
    )
    _blend_poly(image, [proj(band)], model.accessories.get("hat_band", (30, 30, 30)))


def draw_glasses(image: np.ndarray, model: FaceModel, proj: Project, colour: tuple) -> None:
    s, shape = model.scale, model.shape
    thick = max(1, int(round(0.045 * s)))
    rims = []
    for eye in (RIGHT_UPPER_LID + RIGHT_LOWER_LID, LEFT_UPPER_LID + LEFT_LOWER_LID):
        c = shape[eye].mean(0)
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        # a rounded rectangle (superellipse) around the eye, in front of the face
        rx, ry = 0.3, 0.21
        x = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.6 * rx
        y = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.6 * ry
        rim = np.column_stack([c[0] + x, c[1] + y + 0.02, np.full_like(x, c[2] - 0.12)])
        rims.append(rim)
        pts = proj(rim)
        _blend_poly(image, [pts], (200, 220, 235), alpha=0.12)  # lens glint
        cv2.polylines(image, [np.round(pts * 16).astype(np.int32)], True, colour, thick, cv2.LINE_AA, shift=4)
    bridge = proj(np.array([rims[0][0], [0.0, rims[0][0][1] - 0.04, rims[0][0][2] - 0.03], rims[1][16]]))
    cv2.polylines(image, [np.round(bridge * 16).astype(np.int32)], False, colour, thick, cv2.LINE_AA, shift=4)
    for rim, ear in ((rims[0], 234), (rims[1], 454)):
        outer = rim[16] if ear == 234 else rim[0]
        temple = proj(np.array([outer, shape[ear] + np.array([0, -0.05, -0.1])]))
        cv2.polylines(image, [np.round(temple * 16).astype(np.int32)], False, colour, thick, cv2.LINE_AA, shift=4)


def draw_accessories(image: np.ndarray, model: FaceModel, e: Expression) -> None:
    """Glasses, hat and earrings as 3D outlines in canonical units, projected with the head pose (in place)."""
    acc = model.accessories
    proj = accessory_projection(model, e)
    if "earrings" in acc:
        draw_earrings(image, model, proj, acc["earrings"])
    if "hat" in acc:
        draw_hat(image, model, proj, acc["hat"])
    if "glasses" in acc:
        draw_glasses(image, model, proj, acc["glasses"])


def render(model: FaceModel, e: Expression) -> tuple[np.ndarray, np.ndarray]:
    """One frame: RGB uint8 (S, S, 3) and the ground-truth landmarks (478, 2) in output pixels."""
    verts = deform(model, e)
    xy, depth = project(model, verts, e)
    image = warp(model, xy, depth).astype(np.float32)
    draw_mouth(image, xy, model)
    draw_accessories(image, model, e)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), xy[:NUM_MESH].astype(np.float32)
