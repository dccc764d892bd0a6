"""Who the built-in people are: looks (base portrait, skin, hair, eyes, lips, accessories, face shape) and voice
(espeak-ng voice variant, pitch, rate), all dealt from palettes by the seed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np


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


def spec_json(spec: IdentitySpec) -> dict:
    """The spec as JSON-ready values (tuples become lists), as written to identities.json."""
    d = asdict(spec)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
