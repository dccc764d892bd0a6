"""Avatar loops: a few seconds of an identity's own footage over which any speech is rendered in the full frame
(as LiveTalking and MuseTalk serve avatars).

A checkpoint may carry `avatars/<name>.mp4` (an enrolment keeps the start of the person's video there). A built-in
person of a checkpoint trained on `apb2face synth` data (its `meta.replay` names the recipe) gets a clip rendered
from that recipe instead, once per machine, into `apb2face.io.cache_root()` (`data.synth.avatar`: the person at
rest, framed wider than the face crop). The clip's face track (boxes, paste points, pose, blinks:
`revoice.FaceTrack`) is measured once and cached there too, keyed by the clip's bytes and the tracking settings, so
later calls go straight to rendering. Rendering is the re-voice of that clip (ping-pong looped for as long as the
speech lasts: `full_frames` here, `revoice.revoice` into an MP4, `avatar_stream` live); the mouth comes from the
audio, so it rests closed in silence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apb2face.data.synth.avatar import AVATAR_VERSION, builtin_spec, write_idle_clip
from apb2face.data.synth.recipe import recipe_digest, synth_recipes
from apb2face.errors import UserError
from apb2face.inference.motion import Motion
from apb2face.inference.pipeline import APB2FacePipeline, AudioInput, DrivingAudio, Reference
from apb2face.inference.revoice import (
    FaceTrack,
    RevoiceConfig,
    StageTimer,
    full_frame_batches,
    plan_revoice,
    track_video,
)
from apb2face.io import atomic_path, cache_root

log = logging.getLogger(__name__)

AVATARS_DIR = "avatars"
TRACK_CACHE_VERSION = 1
MIN_AVATAR_SECONDS = 1.0  # a shorter loop turns around so often that the head visibly bounces


@dataclass(frozen=True)
class Avatar:
    """An identity's loop clip, ready to render over: the clip and its face track."""

    name: str
    video: Path
    track: FaceTrack


def avatar_clip(checkpoint: str | Path | None, name: str, meta: dict | None = None) -> Path:
    """The identity's loop clip: `avatars/NAME.mp4` in the checkpoint, else the built-in person's clip made from the
    checkpoint's synth recipe (`meta.replay`; rendered into the cache on first use). UserError saying how to get one
    when there is neither."""
    where = Path(checkpoint) if checkpoint is not None else Path("checkpoint")
    if checkpoint is not None:
        path = Path(checkpoint) / AVATARS_DIR / f"{name}.mp4"
        if path.is_file():
            return path
    built = builtin_avatar_clip(meta or {}, name, where / "config.json")
    if built is not None:
        return built
    raise UserError(
        f"identity {name!r} has no avatar clip ({AVATARS_DIR}/{name}.mp4 in the checkpoint) and is not a built-in "
        "person its meta.replay recipe can render: give --driving VIDEO to re-voice a video of them, or enrol them "
        "from a video (apb2face enroll keeps one)",
        where,
    )


def builtin_avatar_clip(meta: dict, name: str, where: str | Path) -> Path | None:
    """The avatar clip of built-in person `name` from the first synth recipe in `meta.replay` that has them, made once
    per machine under the cache (deterministic from the recipe's seed; never downloaded); None when no recipe has
    them."""
    for recipe in synth_recipes(meta, where):
        if builtin_spec(recipe, name) is None:
            continue
        path = cache_root() / "avatars" / recipe_digest({**recipe, "avatar": AVATAR_VERSION}) / f"{name}.mp4"
        if not path.is_file():
            log.info("rendering %s's avatar clip from the built-in recipe into %s (once per machine)", name, path)
            try:
                write_idle_clip(recipe, name, path)
            except OSError as exc:
                raise UserError(
                    f"cannot write the avatar clip into the cache ({exc.strerror or exc}); set APB2FACE_CACHE to a "
                    "writable folder",
                    path.parent,
                ) from None
        return path
    return None


def load_avatar(pipe: APB2FacePipeline, name: str, config: RevoiceConfig, timer: StageTimer | None = None) -> Avatar:
    """The identity's clip (`avatar_clip`) and its face track (`cached_track`); UserError when `name` is not one of
    the checkpoint's identities or the clip is shorter than MIN_AVATAR_SECONDS."""
    if not isinstance(name, str) or name not in pipe.identities:
        raise UserError(
            "full-frame output without a driving video renders over an identity's avatar clip: give an identity "
            f"of the checkpoint ({', '.join(pipe.identities) or 'none'})",
            str(name) if isinstance(name, (str, Path)) else "reference",
        )
    video = avatar_clip(pipe.checkpoint, name, pipe.meta)
    track = cached_track(video, config, pipe.crop_scale, timer)
    seconds = len(track.ticks()) / track.fps
    if seconds < MIN_AVATAR_SECONDS:
        raise UserError(
            f"the avatar clip is {seconds:.2f} s long; an avatar loop needs at least {MIN_AVATAR_SECONDS:g} s", video
        )
    return Avatar(name, video, track)


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


# ------------------------------------------------------------------------------------------ full frames, offline


@dataclass(frozen=True)
class FullFrames:
    """A full-frame generation, checked and ready: `batches` renders as it is taken."""

    driving: DrivingAudio
    motion: Motion  # the video's pose and blinks per output frame
    fps: float  # the video's frame rate: the output's
    size: tuple[int, int]  # (H, W)
    batches: Iterator[tuple[np.ndarray, np.ndarray]]  # (frames (n, H, W, 3) uint8, landmarks (n, K, 2))


def full_frames(
    pipe: APB2FacePipeline,
    reference: Reference,
    audio: AudioInput,
    config: RevoiceConfig,
    *,
    sample_rate: int | None = None,
    driving: str | Path | None = None,
    allow_unknown: bool = False,
) -> FullFrames:
    """`driving` re-voiced with `audio`, or without it the identity's avatar loop (`load_avatar`): the frames
    `revoice` writes, as arrays (`APB2FacePipeline.full_frames`)."""
    video, track = driving, None
    if video is None:
        avatar = load_avatar(pipe, reference, config)
        video, track = avatar.video, avatar.track
    plan = plan_revoice(pipe, reference, video, audio, config, sample_rate, allow_unknown, track)
    return FullFrames(
        driving=plan.driving,
        motion=Motion(pose=plan.job.pose, eyes=plan.job.eyes),
        fps=plan.track.fps,
        size=plan.track.shape,
        batches=full_frame_batches(pipe, video, plan, config),
    )
