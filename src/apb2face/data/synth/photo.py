"""One photo -> a training set: the built-in renderer turns a portrait into a person who talks (espeak-ng
sentences, visemes), blinks and turns the head, with exact landmarks, pose and eye openness per frame.

This is how `apb2face enroll photo.jpg` gets footage when there is no video: the texture is the photo itself
(nothing repainted), the mouth is closed at rest and opened by the renderer's jaw, so what the model learns is the
person as photographed. The last clips are held out, as `prepare --split time` holds out the end of a video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apb2face.data.audio import SAMPLE_RATE
from apb2face.data.format import DatasetWriter
from apb2face.data.synth.appearance import build_photo_identity, photo_face
from apb2face.data.synth.dataset import FPS, ClipJob, render_clip
from apb2face.data.synth.identities import IdentitySpec
from apb2face.data.synth.sentences import choose_sentences

PHOTO_SOURCE = "apb2face enroll: rendered from one photo"
# several voices, so the model hears more than one speaker say the person's sentences
PHOTO_VOICES = ("en-us", "en-us+f2", "en+m3", "en-gb-x-rp+f3")


def photo_spec(name: str, voice: str, seed: int) -> IdentitySpec:
    """The person as photographed: neutral shape and colours (the build ignores colours), one voice."""
    rng = np.random.default_rng([seed, 7])
    return IdentitySpec(
        name=name,
        base="photo",
        mirrored=False,
        skin=(1.0, 0.0, 0.0),
        hair=(0, 0, 0),
        iris=(0, 0, 0),
        lips=(0, 0, 0),
        background=(0, 0, 0),
        accessories=(),
        face_width=1.0,
        jaw_width=1.0,
        chin_length=1.0,
        voice=voice,
        pitch=int(rng.integers(35, 70)),
        rate=int(rng.integers(140, 180)),
        articulation=1.0,
    )


def photo_dataset(
    image: np.ndarray,
    points: np.ndarray,
    name: str,
    out: str | Path,
    size: int,
    clips: int = 16,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress=None,  # noqa: ANN001
) -> dict:
    """Render `clips` sentences of the person in the photo into a dataset at `out` (a new folder); the last
    `test_fraction` of the clips form the test split. Returns {"train": seconds, "test": seconds}."""
    base = photo_face(image, points)
    writer = DatasetWriter(out, image_size=size, sample_rate=SAMPLE_RATE, fps=FPS, source=PHOTO_SOURCE)
    model = None
    keys, frames = [], []
    for j, sentence in enumerate(choose_sentences(0, clips, seed)):
        spec = photo_spec(name, PHOTO_VOICES[j % len(PHOTO_VOICES)], seed + j)
        model = model or build_photo_identity(base, spec, size)
        clip = render_clip(model, spec, ClipJob(0, j, sentence, seed), FPS)
        record = writer.add_clip(
            name,
            f"photo{j:03d}",
            frames=clip.frames,
            audio=clip.audio,
            landmarks=clip.landmarks,
            pose=clip.pose,
            eyes=clip.eyes,
            text=sentence,
            extra={"source": PHOTO_SOURCE, "voice": spec.voice},
        )
        keys.append(record.key)
        frames.append(len(clip.frames))
        if progress is not None:
            progress(1)
    held = max(1, round(clips * test_fraction))
    writer.finish(splits={"train": keys[:-held], "test": keys[-held:]}, seed=seed)
    return {"train": sum(frames[:-held]) / FPS, "test": sum(frames[-held:]) / FPS}
