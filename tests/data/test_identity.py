from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apb2face.data import synth
from apb2face.data.identity import (
    EMBEDDING_SIZE,
    SAME_PERSON_DISTANCE,
    FaceEmbedder,
    closest_identity,
    detection_scale,
    match_photo,
)
from apb2face.data.synth.face_render import Expression, render

# the demo checkpoint's people: `apb2face synth --identities 6 --seed 0` (its model card)
DEMO_IDENTITIES = Path(str(resources.files("apb2face").joinpath("checkpoints/demo/identities")))
NUM_IDENTITIES, SEED = 6, 0


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def bundled() -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(DEMO_IDENTITIES.glob("id*.png"))}


@pytest.fixture(scope="module")
def renders() -> dict[str, list[np.ndarray]]:
    """Two fresh renders per built-in person at 256 px: neutral, and talking with the head turned and the eyes shut."""
    specs = synth.identity_specs(NUM_IDENTITIES, SEED)
    out = {}
    for i, spec in enumerate(specs):
        model = synth.build_identity(spec, 256)
        poses = (Expression(), Expression(jaw=0.3, yaw=15, pitch=-5, close_left=1, close_right=1))
        out[f"id{i:02d}"] = [render(model, e)[0] for e in poses]
    return out


def test_embedding_is_128_unit_vector_and_none_without_face(embedder: FaceEmbedder, bundled: dict) -> None:
    vector = embedder.embed(bundled["id00"])
    assert vector is not None and vector.shape == (EMBEDDING_SIZE,) and vector.dtype == np.float32
    assert 0.5 < np.linalg.norm(vector) < 1.5  # dlib's descriptors have a norm near 1
    assert embedder.embed(np.full((200, 200, 3), 128, np.uint8)) is None
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert embedder.embed(noise) is None


def test_same_person_from_two_renders_is_close(embedder: FaceEmbedder, renders: dict, bundled: dict) -> None:
    for name, (neutral, talking) in renders.items():
        a, b, ref = embedder.embed(neutral), embedder.embed(talking), embedder.embed(bundled[name])
        assert a is not None and b is not None and ref is not None, name
        assert embedder.distance(a, b) < SAME_PERSON_DISTANCE, name
        assert embedder.distance(a, ref) < SAME_PERSON_DISTANCE, name  # a fresh render vs the checkpoint's crop


def test_people_from_different_base_portraits_are_far(embedder: FaceEmbedder, bundled: dict) -> None:
    vectors = embedder.embed_all(bundled)
    assert sorted(vectors) == sorted(bundled)
    bases = {s.base for s in synth.identity_specs(NUM_IDENTITIES, SEED)}
    assert len(bases) == 2  # astronaut (id00, id02, id04) and Grace Hopper (id01, id03, id05)
    specs = dict(zip(sorted(bundled), synth.identity_specs(NUM_IDENTITIES, SEED)))
    far = near = 0
    for x, y in itertools.combinations(sorted(vectors), 2):
        d = embedder.distance(vectors[x], vectors[y])
        if specs[x].base != specs[y].base:
            assert d > SAME_PERSON_DISTANCE, (x, y, d)
            far += 1
        else:
            near += d < SAME_PERSON_DISTANCE
    assert far == 9
    # Honest record, not a goal: several people made from one base portrait are still one person to the face
    # recogniser (id01/id05 at 0.22, id01/id03 0.41, id03/id05 0.43, id00/id04 0.56; issue 16 asks for more bases).
    assert near >= 1


def test_match_photo_names_the_person(embedder: FaceEmbedder, renders: dict, bundled: dict) -> None:
    for name in ("id00", "id02"):  # people without a same-base twin closer than 0.6 to them
        found = match_photo(embedder, renders[name][1], bundled)
        assert found is not None and found.name == name and found.same_person
    blank = np.full((128, 128, 3), 200, np.uint8)
    assert match_photo(embedder, blank, bundled) is None
    assert closest_identity(np.zeros(EMBEDDING_SIZE, np.float32), {}) is None


def test_detection_scale_bounds_the_image() -> None:
    assert detection_scale(np.zeros((128, 100, 3), np.uint8)).shape[:2] == (328, 256)
    assert detection_scale(np.zeros((4000, 3000, 3), np.uint8)).shape[:2] == (1024, 768)
    same = np.zeros((400, 300, 3), np.uint8)
    assert detection_scale(same) is same
