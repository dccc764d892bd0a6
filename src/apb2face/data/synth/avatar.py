"""Avatar clips of the built-in people: a few seconds of one identity at rest (closed mouth, a gentle idle sway of
the head, natural blinks), framed wider than the face crop so that full-frame output has a real frame around the
face: the shoulders and the background, at twice the crop's resolution, so the model's crop pastes back about 1:1.

Deterministic from the recipe's seed (pose and blinks have their own random streams, apart from the dataset's), so
every machine makes the same clip; `write_idle_clip` renders it once into a file (the caller caches it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apb2face.data.synth import face_render
from apb2face.data.synth.appearance import build_identity
from apb2face.data.synth.dataset import FPS
from apb2face.data.synth.face_render import Expression
from apb2face.data.synth.identities import IdentitySpec, identity_specs
from apb2face.data.synth.schedules import blink_track, pose_track

AVATAR_SECONDS = 6.0  # the loop plays forward and backward: a 12 s cycle
AVATAR_ZOOM = 0.5  # the face crop is half the frame's side
IDLE_POSE_LIMITS = (6.0, 3.0, 2.0)  # degrees yaw, pitch, roll: an idle sway, smaller than when speaking
AVATAR_VERSION = 1  # part of the cache key: bump when the clip's recipe changes
CLIP_CRF = 14  # the frame around the face is shown as it is: keep it clean


def builtin_spec(recipe: dict[str, int], name: str) -> tuple[int, IdentitySpec] | None:
    """(index, spec) of the built-in person `name` in a synth recipe, None when the recipe has no such person."""
    for index, spec in enumerate(identity_specs(recipe["identities"], recipe["seed"])):
        if spec.name == name:
            return index, spec
    return None


def idle_frames(
    spec: IdentitySpec, index: int, size: int, seed: int, seconds: float = AVATAR_SECONDS, fps: float = FPS
) -> np.ndarray:
    """(N, 2 size, 2 size, 3) uint8 RGB: the person at rest, the face crop (as the dataset frames it at `size`) half
    the frame's side."""
    model = build_identity(spec, 2 * size, zoom=AVATAR_ZOOM)
    n = int(round(seconds * fps))
    pose = pose_track(np.random.default_rng([seed, 8, index]), n, fps, IDLE_POSE_LIMITS)
    eyes = blink_track(np.random.default_rng([seed, 9, index]), n, fps)
    frames = np.empty((n, 2 * size, 2 * size, 3), np.uint8)
    for i in range(n):
        e = Expression(
            close_left=float(1 - eyes[i, 0]),
            close_right=float(1 - eyes[i, 1]),
            yaw=float(pose[i, 0]),
            pitch=float(pose[i, 1]),
            roll=float(pose[i, 2]),
        )
        frames[i] = face_render.render(model, e)[0]
    return frames


def write_idle_clip(recipe: dict[str, int], name: str, path: str | Path) -> bool:
    """Render `name`'s avatar clip (silent H.264 MP4 at the dataset's frame rate) into `path`, atomically. False when
    the recipe has no such person."""
    from apb2face.data.video import write_video

    found = builtin_spec(recipe, name)
    if found is None:
        return False
    index, spec = found
    frames = idle_frames(spec, index, recipe["size"], recipe["seed"])
    write_video(path, frames, fps=FPS, crf=CLIP_CRF)
    return True
