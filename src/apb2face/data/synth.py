"""The built-in multi-person talking-face dataset: distinct identities speaking espeak-ng sentences.

Pipeline per clip: sentence -> espeak-ng speech + phoneme onsets (`speech.synthesize`) -> viseme tracks (jaw opening,
lip rounding) with coarticulation -> independent head-pose and blink schedules (their own random streams, never
looking at the audio) -> `face_render.render` per frame -> `format.DatasetWriter` (+ an MP4 for people to watch).

Everything is a pure function of (seed, identity index, clip index): the same seed gives byte-identical dataset files.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face, face_render
from apb2face.data.audio import SAMPLE_RATE, num_video_frames
from apb2face.data.face_render import Expression, FaceModel

FPS = 25.0
LEAD_IN = 0.3  # seconds of silence before and after each sentence (the mouth rests closed)
TAIL = 0.3
JAW_SCALE = 0.7  # viseme openings (canonical units) -> jaw drop; wide vowels open the lips to ~0.3 of the mouth width

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet at the station just before nine in the morning.",
    "A large wave broke over the harbour wall and soaked the fishermen.",
    "My grandmother grew tomatoes, beans and pumpkins in her garden.",
    "Could you tell me the way to the nearest post office?",
    "The weather forecast says it will rain all weekend.",
    "Every child should learn to swim before the age of ten.",
    "He opened the window and a cold breeze filled the room.",
    "The museum is closed on Mondays but open late on Fridays.",
    "She played the piano beautifully at the concert last night.",
    "Bright yellow leaves covered the path through the park.",
    "Our train was delayed by almost an hour because of the snow.",
    "They painted the old boat blue and white before the summer.",
    "I would like a cup of tea with milk and no sugar, please.",
    "The little dog barked loudly at the postman every morning.",
    "Mountains rise above the clouds in the far north of the country.",
    "Remember to switch off the lights when you leave the office.",
    "The library has thousands of books about history and science.",
    "We watched the sun go down behind the hills.",
    "A good night's sleep helps you think more clearly.",
    "The children built a huge castle out of sand on the beach.",
    "Who left the back door open during the storm?",
    "Fresh bread from the bakery smells wonderful in the morning.",
    "The pilot announced that we would land in twenty minutes.",
    "Music can change the mood of a room in an instant.",
    "Please speak slowly so that everyone can understand you.",
    "The river flows quietly through the middle of the town.",
    "My brother bought a new bicycle with his first pay check.",
    "An apple a day keeps the doctor away, or so they say.",
    "The team worked late to finish the project on time.",
    "Owls hunt at night and sleep during the day.",
    "We need more chairs for the guests in the garden.",
    "The old clock on the wall stopped at a quarter past three.",
    "How many languages can you speak fluently?",
    "The market sells fruit, vegetables, fish and flowers.",
    "A thick fog rolled in from the sea before dawn.",
    "She wrote a long letter to her friend in Australia.",
    "Turn left at the bridge and follow the road to the farm.",
    "The students asked many questions after the lecture.",
    "Warm soup is the best food on a cold winter evening.",
    "The baby laughed when the puppy licked her hand.",
    "They found an old map hidden under the floorboards.",
    "Our neighbours are moving to a smaller house by the lake.",
    "The news spread quickly through the whole village.",
    "Keep your passport somewhere safe while you travel.",
    "Thunder rumbled in the distance as the clouds grew dark.",
    "He fixed the broken chair with glue and a few nails.",
    "Every morning she runs five miles along the river.",
    "The restaurant on the corner serves excellent pizza.",
    "Bees carry pollen from one flower to the next.",
    "Would you mind opening the door for me?",
    "The scientist measured the temperature every hour.",
    "Winter came early and the lake froze over in November.",
    "I have never seen so many stars in the sky.",
    "The shop assistant wrapped the present in red paper.",
    "Please write your name at the top of the page.",
    "Our football team won the match by two goals.",
    "The path up the mountain is steep and rocky.",
    "She keeps her keys in a small box by the door.",
    "Good friends are hard to find and easy to lose.",
    "The farmer woke up early to feed the cows.",
    "A ship appeared on the horizon just after midday.",
    "My phone battery died in the middle of the call.",
    "The painter mixed blue and yellow to make green.",
    "Bring an umbrella, because the clouds look heavy.",
    "The city lights sparkled across the dark water.",
    "We planted an oak tree in the middle of the field.",
    "Please put the dishes away after dinner.",
    "Jazz musicians often improvise during their solos.",
    "The cat slept all afternoon in a patch of sunlight.",
    "Nobody knew the answer to the final question.",
]

# viseme targets per phoneme (IPA without stress/length marks): jaw opening (canonical units) and rounding
# (+1 rounded/protruded ... -1 spread). Bilabials close the lips; pauses rest the mouth.
_VOWELS_OPEN = {
    "a": 0.30,
    "ɑ": 0.30,
    "æ": 0.27,
    "aɪ": 0.28,
    "aʊ": 0.28,
    "ʌ": 0.22,
    "ɐ": 0.2,
    "ɒ": 0.26,
    "ɔ": 0.24,
    "ɔɪ": 0.22,
    "ɛ": 0.2,
    "e": 0.18,
    "eɪ": 0.18,
    "ə": 0.14,
    "ɚ": 0.14,
    "ɜ": 0.16,
    "ɪ": 0.12,
    "i": 0.10,
    "oʊ": 0.2,
    "o": 0.2,
    "əʊ": 0.18,
    "ʊ": 0.1,
    "u": 0.08,
    "ɪə": 0.14,
    "eə": 0.18,
    "ʊə": 0.12,
    "aɪə": 0.26,
    "aɪɚ": 0.26,
    "ɑɹ": 0.26,
    "ɔɹ": 0.22,
    "ɛɹ": 0.2,
    "ɪɹ": 0.12,
    "ʊɹ": 0.12,
    "i:": 0.1,
}
_ROUND = {
    "oʊ": 0.6,
    "o": 0.6,
    "əʊ": 0.5,
    "ɔ": 0.5,
    "ɔɪ": 0.4,
    "ɒ": 0.3,
    "ʊ": 0.8,
    "u": 1.0,
    "w": 1.0,
    "ʃ": 0.5,
    "ʒ": 0.5,
    "tʃ": 0.5,
    "dʒ": 0.5,
    "ɹ": 0.3,
    "aʊ": 0.2,
    "ʊə": 0.6,
    "ʊɹ": 0.6,
    "i": -0.8,
    "ɪ": -0.5,
    "eɪ": -0.5,
    "e": -0.5,
    "ɛ": -0.4,
    "æ": -0.3,
    "s": -0.4,
    "z": -0.4,
    "j": -0.4,
}
_CONSONANT_OPEN = {
    "p": 0.0,
    "b": 0.0,
    "m": 0.0,
    "f": 0.03,
    "v": 0.03,
    "θ": 0.06,
    "ð": 0.06,
    "t": 0.06,
    "d": 0.06,
    "n": 0.06,
    "l": 0.08,
    "ɾ": 0.06,
    "s": 0.04,
    "z": 0.04,
    "ʃ": 0.06,
    "ʒ": 0.06,
    "tʃ": 0.06,
    "dʒ": 0.06,
    "k": 0.08,
    "ɡ": 0.08,
    "g": 0.08,
    "ŋ": 0.08,
    "h": 0.12,
    "ɹ": 0.08,
    "j": 0.06,
    "w": 0.04,
    "ʔ": 0.05,
    "x": 0.08,
}
_BILABIAL = {"p", "b", "m"}


@dataclass(frozen=True)
class IdentitySpec:
    """How one synthetic person looks and sounds (all derived from the seed)."""

    name: str
    base: str  # "astronaut" | "grace_hopper"
    mirrored: bool
    skin: tuple[float, float, float]  # L scale, a shift, b shift (CIELAB, OpenCV 8-bit scale)
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    background: tuple[int, int, int]
    accessories: tuple[str, ...]
    face_width: float
    jaw_width: float
    chin_length: float
    voice: str
    pitch: int
    rate: int
    articulation: float  # scales the viseme jaw openings (some people mumble, some enunciate)
    extras: dict = field(default_factory=dict)


_SKINS = [
    (1.08, 2.0, -6.0),
    (1.0, 0.0, 0.0),
    (0.9, -4.0, 10.0),
    (0.8, 6.0, 12.0),
    (0.64, 8.0, 12.0),
    (0.5, 6.0, 6.0),
    (1.0, 10.0, -3.0),
    (0.9, 2.0, 16.0),
]
_HAIRS = [
    (28, 24, 22),
    (95, 60, 35),
    (165, 65, 30),
    (215, 180, 110),
    (175, 175, 175),
    (45, 70, 150),
    (150, 60, 120),
    (235, 228, 210),
]
_IRISES = [(95, 60, 30), (60, 110, 175), (70, 130, 80), (120, 130, 140), (130, 100, 50), (40, 35, 30)]
_LIPS = [(175, 80, 90), (200, 45, 70), (150, 90, 90), (125, 65, 65), (210, 110, 150), (165, 70, 60)]
_ACCESSORIES = [
    (),
    ("glasses",),
    ("beard", "moustache"),
    ("hat",),
    ("earrings",),
    ("glasses", "moustache"),
    ("earrings", "hat"),
    ("beard",),
]
_VOICES_M = ["en-us+m1", "en+m3", "en-us+m7", "en-gb-x-rp+m2", "en-029+m4", "en-gb-scotland+m5"]
_VOICES_F = ["en-us+f2", "en+f1", "en-us+f4", "en-gb-x-rp+f3", "en-029+f5", "en-gb-scotland+f2"]
_BASES = [("astronaut", False), ("grace_hopper", False), ("astronaut", True), ("grace_hopper", True)]


def _deal(perm: np.ndarray, i: int) -> int:
    """Palette entry of identity i: each round of len(perm) identities shifts by one more, so that identities beyond
    the palette size still combine entries differently from the first round."""
    return int(perm[(i + i // len(perm)) % len(perm)])


def identity_specs(n: int, seed: int) -> list[IdentitySpec]:
    """N distinct identities: palettes are permuted by the seed and dealt out so neighbours never share them."""
    rng = np.random.default_rng([seed, 101])
    perms = {
        k: rng.permutation(len(p))
        for k, p in (("skin", _SKINS), ("hair", _HAIRS), ("iris", _IRISES), ("lips", _LIPS), ("acc", _ACCESSORIES))
    }
    hue0 = rng.uniform(0, 180)
    voice_offset = int(rng.integers(6))
    dealt = {True: 0, False: 0}  # voices dealt per voice kind: each identity gets its own variant (up to 6 per kind)
    specs = []
    for i in range(n):
        r = np.random.default_rng([seed, 102, i])
        acc = _ACCESSORIES[_deal(perms["acc"], i)]
        base, mirrored = _BASES[i % len(_BASES)]
        if base == "grace_hopper":  # she already wears glasses and a cap
            acc = tuple(a for a in acc if a not in ("glasses", "hat"))
        hue = (hue0 + i * 68.75) % 180  # golden-angle steps (OpenCV hue is 0-180): distinct neighbours
        bg = cv2.cvtColor(np.uint8([[[hue, r.uniform(60, 150), r.uniform(150, 225)]]]), cv2.COLOR_HSV2RGB)[0, 0]
        male = "beard" in acc or "moustache" in acc or ("earrings" not in acc and r.random() < 0.4)
        voices = _VOICES_M if male else _VOICES_F
        voice = voices[(voice_offset + dealt[male]) % len(voices)]
        dealt[male] += 1
        specs.append(
            IdentitySpec(
                name=f"id{i:02d}",
                base=base,
                mirrored=mirrored,
                skin=_SKINS[_deal(perms["skin"], i)],
                hair=_HAIRS[_deal(perms["hair"], i)],
                iris=_IRISES[_deal(perms["iris"], i)],
                lips=_LIPS[_deal(perms["lips"], i)],
                background=tuple(int(v) for v in bg),
                accessories=acc,
                face_width=float(r.uniform(0.9, 1.1)),
                jaw_width=float(r.uniform(0.88, 1.12)),
                chin_length=float(r.uniform(0.9, 1.15)),
                voice=voice,
                pitch=int(r.integers(25 if male else 45, 55 if male else 80)),
                rate=int(r.integers(140, 186)),
                articulation=float(r.uniform(0.85, 1.15)),
                extras={
                    "glasses_colour": tuple(int(v) for v in r.integers(10, 120, 3)),
                    "hat_colour": tuple(int(v) for v in r.integers(20, 200, 3)),
                    "earring_colour": (212, 175, 55) if r.random() < 0.5 else (200, 200, 210),
                },
            )
        )
    return specs


# ---------------------------------------------------------------------------------------------------- base faces


@dataclass(frozen=True)
class BaseFace:
    image: np.ndarray  # RGB uint8
    points: np.ndarray  # (478, 3) mediapipe pixels
    person: np.ndarray  # float32 (H, W) person mask 0..1


def _photo(name: str) -> np.ndarray:
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
    lower = face_render._smoothstep(y_eye, y_chin, canon[:, 1])
    p[:, 0] *= spec.face_width * (1 + (spec.jaw_width - 1) * lower)
    p[:, 1] += (spec.chin_length - 1) * np.clip(canon[:, 1] - y_mouth, 0, None)
    # rest with closed lips (a portrait may smile with parted lips): upper and lower inner lip meet halfway
    upper = face_render.LIPS_INNER_UPPER[1:-1]
    lower = face_render.LIPS_INNER_LOWER[::-1][1:-1]
    mid = 0.5 * (p[upper] + p[lower])
    p[upper], p[lower] = mid, mid
    return p


def _poly_mask(shape: tuple[int, int], polys: list[np.ndarray], blur: float = 0.0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(p * 16).astype(np.int32) for p in polys], 255, cv2.LINE_AA, shift=4)
    m = m.astype(np.float32) / 255
    return cv2.GaussianBlur(m, (0, 0), blur) if blur > 0 else m


def _recolour(img: np.ndarray, mask: np.ndarray, colour: tuple, keep_light: float = 1.0) -> np.ndarray:
    """Paint `colour` into `mask`, modulated by the local lightness (texture and shading survive)."""
    grey = img.mean(2)
    ref = float(np.median(grey[mask > 0.5])) if np.any(mask > 0.5) else float(grey.mean())
    shade = (grey / max(ref, 1.0)) ** keep_light
    painted = np.asarray(colour, np.float32)[None, None] * shade[..., None]
    m = mask[..., None]
    return img * (1 - m) + np.clip(painted, 0, 255) * m


def build_identity(spec: IdentitySpec, size: int) -> FaceModel:
    """The renderable face of one identity: base portrait edited (background, skin, hair, eyes, lips, facial hair)
    and its mesh reshaped."""
    base = base_face(spec.base, spec.mirrored)
    canon, origin, basis, iod = face_render.frontalize(base.points)
    shape = shape_warp(canon, spec)
    scale, _ = face_render.frame_geometry(shape, size)
    f = scale / iod  # texture at about output resolution: the warp then samples ~1:1
    h, w = base.image.shape[:2]
    tsize = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    img = cv2.resize(base.image, tsize, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC).astype(np.float32)
    person = cv2.resize(base.person, tsize, interpolation=cv2.INTER_LINEAR)
    pts = base.points[:, :2] * f
    hw = img.shape[:2]

    lab = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    # skin: pixels whose colour is close to the cheeks'/forehead's, on the person
    samples = []
    for idx in (50, 280, 151, 205, 425, 108, 337):
        x, y = np.round(pts[idx]).astype(int)
        r = max(2, int(0.06 * scale))
        samples.append(lab[max(0, y - r) : y + r, max(0, x - r) : x + r].reshape(-1, 3))
    ref = np.median(np.concatenate(samples), axis=0)
    dist = np.sqrt(0.3 * (lab[..., 0] - ref[0]) ** 2 + (lab[..., 1] - ref[1]) ** 2 + (lab[..., 2] - ref[2]) ** 2)
    skin = np.exp(-((dist / 16.0) ** 2)) * person
    features = _poly_mask(
        hw,
        [
            pts[face_render.LIPS_OUTER],
            pts[face_render.RIGHT_UPPER_LID + face_render.RIGHT_LOWER_LID[::-1]],
            pts[face_render.LEFT_UPPER_LID + face_render.LEFT_LOWER_LID[::-1]],
        ],
        blur=1.0,
    )
    oval = _poly_mask(hw, [pts[face_render.FACE_OVAL]], blur=0.02 * scale)
    skin = np.maximum(skin, 0.85 * oval) * (1 - features)
    skin = cv2.GaussianBlur(skin, (0, 0), 1.5)
    # hair: on the person, not skin, inside the head outline, above the mouth
    oval_pts = pts[face_render.FACE_OVAL]
    c = oval_pts.mean(0)
    head = _poly_mask(hw, [c + 1.7 * (oval_pts - c)], blur=0.05 * scale)
    y_mouth = pts[[face.MOUTH_LEFT_CORNER, face.MOUTH_RIGHT_CORNER], 1].mean()
    above = (np.arange(hw[0], dtype=np.float32)[:, None] < y_mouth).astype(np.float32) * np.ones(hw, np.float32)
    above = cv2.GaussianBlur(above, (0, 0), 0.1 * scale)
    inner_oval = _poly_mask(hw, [c + 0.93 * (oval_pts - c)], blur=0.02 * scale)
    hair = np.clip(person * head * above * (1 - inner_oval) - 0.8 * skin, 0, 1)
    hair = cv2.GaussianBlur(hair, (0, 0), 1.0)

    # skin tone (CIELAB): lightness scaled, chroma shifted, only where the skin mask is
    lab2 = lab.copy()
    lab2[..., 0] = np.clip(lab2[..., 0] * spec.skin[0], 0, 255)
    lab2[..., 1] = np.clip(lab2[..., 1] + spec.skin[1], 0, 255)
    lab2[..., 2] = np.clip(lab2[..., 2] + spec.skin[2], 0, 255)
    toned = cv2.cvtColor(lab2.astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    img = img * (1 - skin[..., None]) + toned * skin[..., None]
    img = _recolour(img, hair * 0.9, spec.hair, keep_light=0.8)
    # lips and irises
    lips = _poly_mask(hw, [pts[face_render.LIPS_OUTER]], blur=0.8) * (
        1 - _poly_mask(hw, [pts[face_render.LIPS_INNER_UPPER + face_render.LIPS_INNER_LOWER[1:-1]]])
    )
    img = _recolour(img, lips * 0.7, spec.lips, keep_light=0.9)
    for iris_ids, lids in (
        (face_render.RIGHT_IRIS, face_render.RIGHT_UPPER_LID + face_render.RIGHT_LOWER_LID[::-1]),
        (face_render.LEFT_IRIS, face_render.LEFT_UPPER_LID + face_render.LEFT_LOWER_LID[::-1]),
    ):
        centre = pts[iris_ids[0]]
        radius = float(np.linalg.norm(pts[iris_ids[1:]] - centre, axis=1).mean())
        disk = np.zeros(hw, np.uint8)
        cv2.circle(disk, tuple(np.round(centre * 16).astype(int)), int(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
        iris = disk.astype(np.float32) / 255 * _poly_mask(hw, [pts[lids]])
        img = _recolour(img, iris * 0.75, spec.iris, keep_light=1.0)
    # facial hair, painted into the texture so it moves with the jaw
    if "beard" in spec.accessories or "moustache" in spec.accessories:
        rng = np.random.default_rng([ord(ch) for ch in spec.name])
        noise = cv2.GaussianBlur(rng.random(hw).astype(np.float32), (0, 0), 0.6)
        noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
        mask = np.zeros(hw, np.float32)
        if "beard" in spec.accessories:
            jaw = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]
            lower_lip = pts[face_render.LIPS_OUTER_LOWER[::-1]] + np.array([0, 0.04 * scale])
            cheek = [pts[361] + np.array([0, -0.25 * scale]), pts[132] + np.array([0, -0.25 * scale])]
            poly = np.concatenate([pts[jaw], [cheek[0]], lower_lip, [cheek[1]]])
            mask = np.maximum(mask, _poly_mask(hw, [poly], blur=0.03 * scale))
        if "moustache" in spec.accessories:
            upper = pts[[61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]]
            top = upper[::-1] - np.array([0, 0.13 * scale])
            poly = np.concatenate([upper + np.array([0, -0.01 * scale]), top])
            mask = np.maximum(mask, _poly_mask(hw, [poly], blur=0.02 * scale))
        colour = np.asarray(spec.hair, np.float32) * 0.8
        m = (mask * (0.55 + 0.45 * noise))[..., None]
        img = img * (1 - m) + (colour * (0.6 + 0.6 * noise[..., None])) * m
    # background: a soft vertical gradient of the identity's colour behind the person
    grad = np.linspace(1.1, 0.8, hw[0], dtype=np.float32)[:, None, None]
    bg = np.clip(np.asarray(spec.background, np.float32)[None, None] * grad, 0, 255)
    bg = np.broadcast_to(bg, img.shape)
    img = img * person[..., None] + bg * (1 - person[..., None])
    texture = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    accessories = {}
    if "glasses" in spec.accessories:
        accessories["glasses"] = spec.extras["glasses_colour"]
    if "hat" in spec.accessories:
        accessories["hat"] = spec.extras["hat_colour"]
    if "earrings" in spec.accessories:
        accessories["earrings"] = spec.extras["earring_colour"]
    return face_render.build_model(texture, origin * f, basis, iod * f, canon, shape, size, accessories=accessories)


# ---------------------------------------------------------------------------------------------------- schedules


def _strip(ipa: str) -> str:
    return ipa.replace("ˈ", "").replace("ˌ", "").replace("ː", "").replace("-", "").strip()


def viseme_tracks(
    phonemes: list[tuple[float, str]], duration: float, fps: float, num_frames: int, articulation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame jaw opening and lip rounding from phoneme onsets, with coarticulation.

    Targets are step functions on a 200 Hz grid (each phoneme holds its target until the next onset; silence = 0),
    smoothed with a Gaussian (neighbouring phonemes blend) and led by 30 ms (the mouth moves before the sound).
    Bilabials (p, b, m) close the lips through a narrower kernel so closures survive the smoothing.
    """
    rate = 200
    n = int(np.ceil(duration * rate)) + 1
    jaw = np.zeros(n)
    rnd = np.zeros(n)
    closure = np.zeros(n)
    events = sorted(phonemes)
    for k, (t, ipa) in enumerate(events):
        t_end = events[k + 1][0] if k + 1 < len(events) else min(duration, t + 0.12)
        a, b = int(round(t * rate)), int(round(t_end * rate))
        p = _strip(ipa)
        if not p:
            continue  # pause
        open_ = _VOWELS_OPEN.get(p)
        if open_ is None:
            open_ = _CONSONANT_OPEN.get(p, _CONSONANT_OPEN.get(p[:1], 0.08))
            if p[:1] in _VOWELS_OPEN or p[:2] in _VOWELS_OPEN:  # diphthongs / r-coloured vowels we did not list
                open_ = _VOWELS_OPEN.get(p[:2], _VOWELS_OPEN.get(p[:1]))
        jaw[a:b] = JAW_SCALE * open_ * articulation
        rnd[a:b] = _ROUND.get(p, _ROUND.get(p[:2], 0.0))
        if p in _BILABIAL:
            closure[a:b] = 1.0
    jaw = _gauss(jaw, 0.035 * rate)
    rnd = _gauss(rnd, 0.05 * rate)
    closure = _gauss(closure, 0.015 * rate)
    jaw = jaw * (1 - np.clip(closure * 1.3, 0, 1))
    lead = 0.03
    t_frames = np.arange(num_frames) / fps + lead
    grid = np.arange(n) / rate
    return (np.interp(t_frames, grid, jaw).astype(np.float32), np.interp(t_frames, grid, rnd).astype(np.float32))


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid")


def pose_track(
    rng: np.random.Generator, num_frames: int, fps: float, limits: tuple[float, float, float] = (15.0, 8.0, 6.0)
) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees: a sum of slow sinusoids per axis, kept within the limits."""
    t = np.arange(num_frames) / fps
    out = np.zeros((num_frames, 3))
    for axis, limit in enumerate(limits):
        k = 3
        freqs = rng.uniform(0.05, 0.4, k)
        phases = rng.uniform(0, 2 * np.pi, k)
        amps = rng.uniform(0.3, 1.0, k)
        amps /= amps.sum()
        offset = rng.uniform(-0.3, 0.3)
        wave = offset + (1 - abs(offset)) * (
            amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])
        ).sum(0)
        out[:, axis] = limit * rng.uniform(0.5, 1.0) * wave
    return out.astype(np.float32)


def blink_track(rng: np.random.Generator, num_frames: int, fps: float) -> np.ndarray:
    """(N, 2) eye openness (left, right): open, with blinks every 2-6 s lasting 150-250 ms."""
    t = np.arange(num_frames) / fps
    closure = np.zeros(num_frames)
    start = rng.uniform(0.2, 3.0)
    duration = num_frames / fps
    while start < duration:
        length = rng.uniform(0.15, 0.25)
        close_part = 0.4 * length  # lids drop faster than they rise
        u = t - start
        down = (u >= 0) & (u < close_part)
        up = (u >= close_part) & (u < length)
        closure[down] = np.maximum(closure[down], np.sin(0.5 * np.pi * u[down] / close_part) ** 2)
        closure[up] = np.maximum(closure[up], np.cos(0.5 * np.pi * (u[up] - close_part) / (length - close_part)) ** 2)
        start += length + rng.uniform(2.0, 6.0)
    depth = rng.uniform(0.9, 1.0, 2)  # one eye may not close fully
    openness = 1 - closure[:, None] * depth[None, :]
    return openness.astype(np.float32)


# ---------------------------------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class ClipJob:
    identity_index: int
    clip_index: int
    sentence: str
    seed: int


@dataclass
class RenderedClip:
    frames: np.ndarray
    audio: np.ndarray
    landmarks: np.ndarray  # (N, 478, 2) in [0, 1]
    pose: np.ndarray
    eyes: np.ndarray
    jaw: np.ndarray
    phonemes: list


def render_clip(model: FaceModel, spec: IdentitySpec, job: ClipJob, fps: float = FPS) -> RenderedClip:
    """Speak one sentence with one identity's face and voice."""
    from apb2face.data.speech import synthesize

    speech = synthesize(job.sentence, voice=spec.voice, pitch=spec.pitch, rate=spec.rate)
    audio = np.concatenate(
        [np.zeros(int(LEAD_IN * SAMPLE_RATE), np.float32), speech.audio, np.zeros(int(TAIL * SAMPLE_RATE), np.float32)]
    )
    phonemes = [(round(t + LEAD_IN, 4), p) for t, p in speech.phonemes]
    n = num_video_frames(len(audio), fps)
    jaw, rnd = viseme_tracks(phonemes, len(audio) / SAMPLE_RATE, fps, n, spec.articulation)
    pose = pose_track(np.random.default_rng([job.seed, 2, job.identity_index, job.clip_index]), n, fps)
    eyes = blink_track(np.random.default_rng([job.seed, 3, job.identity_index, job.clip_index]), n, fps)
    size = model.size
    frames = np.empty((n, size, size, 3), np.uint8)
    landmarks = np.empty((n, face_render.NUM_MESH, 2), np.float32)
    for i in range(n):
        e = Expression(
            jaw=float(jaw[i]),
            round=float(rnd[i]),
            close_left=float(1 - eyes[i, 0]),
            close_right=float(1 - eyes[i, 1]),
            yaw=float(pose[i, 0]),
            pitch=float(pose[i, 1]),
            roll=float(pose[i, 2]),
        )
        frames[i], xy = face_render.render(model, e)
        landmarks[i] = xy / size
    return RenderedClip(
        frames=frames, audio=audio, landmarks=landmarks, pose=pose, eyes=eyes, jaw=jaw, phonemes=phonemes
    )


def choose_sentences(identity_index: int, count: int, seed: int) -> list[str]:
    """`count` different sentences for one identity (seeded); beyond the list, sentences are paired up."""
    rng = np.random.default_rng([seed, 104, identity_index])
    order = list(rng.permutation(len(SENTENCES)))
    out = [SENTENCES[k] for k in order[:count]]
    j = 0
    while len(out) < count:
        a, b = order[j % len(order)], order[(j * 7 + 3) % len(order)]
        if a != b and f"{SENTENCES[a]} {SENTENCES[b]}" not in out:
            out.append(f"{SENTENCES[a]} {SENTENCES[b]}")
        j += 1
    return out


# worker-process state: the identities' face models, sent once per worker by the pool initializer
_WORKER: dict = {}


def _init_worker(
    models: list[FaceModel], specs: list[IdentitySpec], root: str, size: int, fps: float, videos: bool
) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(models=models, specs=specs, root=root, size=size, fps=fps, videos=videos)


def _run_job(job: ClipJob) -> tuple[str, str, int, str]:
    from apb2face.data.format import DatasetWriter
    from apb2face.data.video import write_video

    w = _WORKER
    spec = w["specs"][job.identity_index]
    clip = render_clip(w["models"][job.identity_index], spec, job, w["fps"])
    name = f"clip{job.clip_index:03d}"
    writer = DatasetWriter(w["root"], image_size=w["size"], sample_rate=SAMPLE_RATE, fps=w["fps"])
    writer.add_clip(
        spec.name,
        name,
        frames=clip.frames,
        audio=clip.audio,
        landmarks=clip.landmarks,
        pose=clip.pose,
        eyes=clip.eyes,
        text=job.sentence,
        extra={
            "source": "apb2face synth",
            "voice": spec.voice,
            "pitch": spec.pitch,
            "rate": spec.rate,
            "phonemes": [[t, p] for t, p in clip.phonemes],
            "jaw": [round(float(v), 5) for v in clip.jaw],
        },
    )
    if w["videos"]:
        write_video(
            Path(w["root"]) / "videos" / spec.name / f"{name}.mp4",
            clip.frames,
            fps=w["fps"],
            audio=clip.audio,
            sample_rate=SAMPLE_RATE,
        )
    return spec.name, name, len(clip.frames), job.sentence


@dataclass(frozen=True)
class SynthConfig:
    identities: int = 6
    clips_per_identity: int = 10
    size: int = 256
    seed: int = 0
    fps: float = FPS
    workers: int = 2
    test_fraction: float = 0.2
    videos: bool = True


def contact_sheet(models: list[FaceModel], specs: list[IdentitySpec], columns: int = 4) -> np.ndarray:
    """One frontal, mouth-slightly-open picture per identity, labelled, in a grid (RGB uint8)."""
    tiles = []
    for model, spec in zip(models, specs):
        img, _ = face_render.render(model, Expression(jaw=0.06))
        img = np.ascontiguousarray(img)
        cv2.putText(
            img,
            spec.name,
            (6, img.shape[0] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            img.shape[0] / 400,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        tiles.append(img)
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    s = tiles[0].shape[0]
    sheet = np.full((rows * s, cols * s, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * s : (r + 1) * s, c * s : (c + 1) * s] = tile
    return sheet


def generate(out: str | Path, cfg: SynthConfig) -> dict:
    """Render the dataset into an empty/new directory `out`. Returns a summary (clips, frames)."""
    from tqdm import tqdm

    from apb2face.data.format import ClipRecord, DatasetWriter
    from apb2face.io import atomic_path, write_json

    out = Path(out)
    specs = identity_specs(cfg.identities, cfg.seed)
    models = [build_identity(s, cfg.size) for s in specs]
    jobs = [
        ClipJob(i, j, sentence, cfg.seed)
        for i in range(cfg.identities)
        for j, sentence in enumerate(choose_sentences(i, cfg.clips_per_identity, cfg.seed))
    ]
    writer = DatasetWriter(out, image_size=cfg.size, sample_rate=SAMPLE_RATE, fps=cfg.fps, source="apb2face synth")
    results = []
    workers = max(1, min(cfg.workers, len(jobs)))
    init = (models, specs, str(out), cfg.size, cfg.fps, cfg.videos)
    with tqdm(total=len(jobs), desc="synth", unit="clip") as bar:
        if workers == 1:
            _init_worker(*init)
            for job in jobs:
                results.append(_run_job(job))
                bar.update()
        else:
            # spawn, not fork: the parent has run mediapipe, whose threads make forked children deadlock
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
                for res in pool.map(_run_job, jobs):
                    results.append(res)
                    bar.update()
    for identity, name, n, text in results:
        writer.register(ClipRecord(identity=identity, name=name, num_frames=n, text=text))
    write_json(out / "identities.json", {"seed": cfg.seed, "identities": [_spec_json(s) for s in specs]})
    with atomic_path(out / "contact_sheet.png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(contact_sheet(models, specs), cv2.COLOR_RGB2BGR))
    meta = writer.finish(test_fraction=cfg.test_fraction, seed=cfg.seed)
    return {"clips": len(meta.clips), "frames": sum(c.num_frames for c in meta.clips), "identities": len(specs)}


def _spec_json(spec: IdentitySpec) -> dict:
    d = asdict(spec)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
