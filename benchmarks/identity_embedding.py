"""How well the dlib face embedding (apb2face.data.identity) tells people apart on our data, at dlib's 0.6 threshold.

Same-person pairs: two renders of one built-in person (several expressions and head poses), a render and the demo
checkpoint's bundled crop, or two frames of one real video (or of two videos of one person). Different-person pairs:
every other pair (built-in people against each other; real speakers, GRID speakers, anchors and portrait stills
against each other). Each real face is embedded twice: from the full frame, and from the 128 px crop that
`generate --reference` checks (align_face, as the pipeline crops a photo). Prints the true-accept rate (same-person
pairs at distance <= 0.6), the false-accept rate (different-person pairs at <= 0.6), the distance distributions,
and the closest different-person pairs.

    .venv/bin/python benchmarks/identity_embedding.py [--real ../shared/data/real] [--frames 4]
"""

from __future__ import annotations

import argparse
import itertools
import time
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# clips of one person under two names (the collection's MANIFEST.md)
SAME_PERSON = {
    "edtalk_obama": "obama",
    "styletalk_obama_clip1": "obama",
    "grid_pwij3p": "grid_speaker2",
    "grid_id2_swwp2s": "grid_speaker2",
}
VIDEO_SUFFIXES = {".mp4", ".mpg"}
STILL_SUFFIXES = {".jpg", ".png"}


def builtin_faces(frames: int) -> list[tuple[str, np.ndarray]]:
    """(person, RGB) for the demo checkpoint's people: its bundled 128 px crops and fresh 256 px renders."""
    from apb2face.data import synth
    from apb2face.data.synth.face_render import Expression, render

    folder = Path(str(resources.files("apb2face").joinpath("checkpoints/demo/identities")))
    out = [(p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in sorted(folder.glob("id*.png"))]
    poses = [
        Expression(),
        Expression(jaw=0.35, round=0.5, yaw=20),
        Expression(yaw=-20, pitch=10, close_left=1, close_right=1),
        Expression(jaw=0.2, round=-0.8, pitch=-10, roll=10),
    ][:frames]
    for i, spec in enumerate(synth.identity_specs(len(out), 0)):  # the card's `synth --seed 0`
        model = synth.build_identity(spec, 256)
        out += [(f"id{i:02d}", render(model, e)[0]) for e in poses]
    return out


def real_faces(folder: Path, frames: int) -> list[tuple[str, np.ndarray]]:
    """(person, RGB) for `frames` evenly spaced frames of every real video, and every portrait still."""
    from apb2face.data.video import iter_frames, probe

    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            info = probe(path)  # MPEG-PS (GRID) reports no frame count: sample by time
            wanted = list(np.linspace(0, info.duration, frames + 2)[1:-1])
            person = SAME_PERSON.get(path.stem, path.stem)
            for t, frame in iter_frames(path):
                if wanted and t >= wanted[0]:
                    out.append((person, frame))
                    wanted.pop(0)
        elif path.suffix.lower() in STILL_SUFFIXES and path.stem.startswith("still_"):
            out.append((path.stem, np.asarray(Image.open(path).convert("RGB"))))
    return out


def embed(faces: list[tuple[str, np.ndarray]], crop: int | None) -> tuple[list[str], np.ndarray, int]:
    """Embeddings of the faces (of their `crop` px pipeline crop when given); returns people, vectors, misses."""
    from apb2face.data.identity import FaceEmbedder
    from apb2face.errors import UserError
    from apb2face.inference.faces import align_face

    embedder = FaceEmbedder()
    people, vectors, missed, seconds = [], [], 0, 0.0
    for person, image in faces:
        if crop is not None:
            try:
                image, _pose = align_face(image, crop)
            except UserError:
                missed += 1
                continue
        started = time.perf_counter()
        vector = embedder.embed(image)
        seconds += time.perf_counter() - started
        if vector is None:
            missed += 1
            continue
        people.append(person)
        vectors.append(vector)
    print(f"(embedding: {1000 * seconds / len(faces):.0f} ms per face)")
    return people, np.stack(vectors), missed


def pair_distances(people: list[str], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    same, different, closest = [], [], []
    for i, j in itertools.combinations(range(len(people)), 2):
        d = float(np.linalg.norm(vectors[i] - vectors[j]))
        if people[i] == people[j]:
            same.append(d)
        else:
            different.append(d)
            closest.append((d, people[i], people[j]))
    return np.array(same), np.array(different), sorted(closest)


def report(label: str, people: list[str], vectors: np.ndarray, missed: int, threshold: float) -> None:
    same, different, closest = pair_distances(people, vectors)
    q = (5, 25, 50, 75, 95)
    print(f"\n== {label}: {len(people)} faces of {len(set(people))} people ({missed} without a detected face)")
    for name, d, rate in (("same", same, "true-accept"), ("different", different, "false-accept")):
        accepted = int(np.sum(d <= threshold))
        print(f"{name}-person pairs: {accepted} / {len(d)} at <= {threshold} ({rate} rate {accepted / len(d):.3f})")
    for name, d in (("same", same), ("different", different)):
        pct = " ".join(f"p{k}={v:.2f}" for k, v in zip(q, np.percentile(d, q)))
        print(f"  {name:9s} distance: min {d.min():.2f} {pct} max {d.max():.2f}")
    seen = set()
    shown = []
    for d, a, b in closest:
        if (a, b) not in seen:
            seen.add((a, b))
            shown.append(f"{a}/{b} {d:.2f}")
        if len(shown) == 6:
            break
    print("  closest different people: " + ", ".join(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "real")
    parser.add_argument("--frames", type=int, default=4, help="frames per real video and renders per built-in person")
    args = parser.parse_args()
    from apb2face.data.identity import SAME_PERSON_DISTANCE

    started = time.perf_counter()
    builtin = builtin_faces(args.frames)
    report("built-in people (demo checkpoint, seed 0)", *embed(builtin, None), SAME_PERSON_DISTANCE)
    if args.real.is_dir():
        real = real_faces(args.real, args.frames)
        report("real clips and stills, full frames", *embed(real, None), SAME_PERSON_DISTANCE)
        report("real clips and stills, 128 px pipeline crops", *embed(real, 128), SAME_PERSON_DISTANCE)
    else:
        print(f"\n(no real clips at {args.real}: skipped)")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
