"""Avatar loops: a few seconds of an identity's own footage over which any speech is rendered in the full frame
(as LiveTalking and MuseTalk serve avatars).

A checkpoint may carry `avatars/<name>.mp4` (an enrolment keeps the start of the person's video there). The clip's
face track (boxes, paste points, pose, blinks: `revoice.FaceTrack`) is measured once and cached under
`apb2face.io.cache_root()`, keyed by the clip's bytes and the tracking settings, so later calls go straight to
rendering. Rendering is the re-voice of that clip (ping-pong looped for as long as the speech lasts); the mouth
comes from the audio, so it rests closed in silence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np

from apb2face.errors import UserError
from apb2face.inference.revoice import FaceTrack, RevoiceConfig, StageTimer, track_video
from apb2face.io import atomic_path, cache_root

log = logging.getLogger(__name__)

AVATARS_DIR = "avatars"
TRACK_CACHE_VERSION = 1


def avatar_clip(checkpoint: str | Path, name: str) -> Path:
    """The identity's loop clip in the checkpoint; UserError saying how to get one when there is none."""
    path = Path(checkpoint) / AVATARS_DIR / f"{name}.mp4"
    if not path.is_file():
        raise UserError(
            f"identity {name!r} has no avatar clip ({AVATARS_DIR}/{name}.mp4 in the checkpoint): give --driving VIDEO "
            "to re-voice a video of them, or enrol them from a video (apb2face enroll keeps one)",
            checkpoint,
        )
    return path


def cached_track(
    video: str | Path, config: RevoiceConfig, crop_scale: float, timer: StageTimer | None = None
) -> FaceTrack:
    """`track_video` of a clip, measured once per (clip bytes, tracking settings) and read from the cache after."""
    video = Path(video)
    settings = (config.box_sigma, config.side_sigma, config.pose_sigma, crop_scale, TRACK_CACHE_VERSION)
    digest = hashlib.sha256(video.read_bytes() + repr(settings).encode()).hexdigest()[:24]
    path = cache_root() / "tracks" / f"{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as saved:
                return _track_from_arrays(saved)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring a damaged cached face track %s (%s)", path, exc)
    track = track_video(video, config, timer, crop_scale=crop_scale)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **_track_arrays(track))
    except OSError as exc:  # a read-only cache only costs the tracking next time
        log.warning("cannot cache the face track in %s (%s)", path.parent, exc)
    return track


def _track_arrays(track: FaceTrack) -> dict[str, np.ndarray]:
    arrays = {f.name: np.asarray(getattr(track, f.name)) for f in dataclasses.fields(track)}
    arrays["shape"] = np.asarray(track.shape, np.int64)
    arrays["fps"] = np.asarray(track.fps, np.float64)
    return arrays


def _track_from_arrays(saved: np.lib.npyio.NpzFile) -> FaceTrack:
    values = {f.name: saved[f.name] for f in dataclasses.fields(FaceTrack)}
    values["shape"] = tuple(int(v) for v in values["shape"])
    values["fps"] = float(values["fps"])
    return FaceTrack(**values)
