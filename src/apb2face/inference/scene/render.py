"""A scene rendered: its faces cast to identities and speakers, then every known face driven by its own speech and
pasted back into the scene at its own resolution.

cast      `cast_faces`: each face's crop is embedded (`pipeline.identity_distances`, dlib) and faces and identities
          are paired nearest first, within the same-person distance; with `assign="left-to-right"` the i-th speaker
          takes the i-th face from the left instead. A face that is no known person stays as it is
render    `generate_scene`: per face, its speaker's track (or silence: a listener's mouth stays closed) drives the
          model; pose and blinks follow the tracked face in a video (played forward and backward while the audio
          lasts, as `revoice` does), or natural motion per face for a still; every face is pasted with the
          full-frame paste-back (`revoice.write_pasted`)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apb2face.data import audio as A
from apb2face.data.identity import SAME_PERSON_DISTANCE
from apb2face.data.video import Mp4Writer
from apb2face.errors import UserError
from apb2face.inference.compose import ColourMatcher, Pasted
from apb2face.inference.motion import DEFAULT_SEED, NaturalMotion
from apb2face.inference.pipeline import MAX_CENTRE_POSE_DEG, APB2FacePipeline, check_fps
from apb2face.inference.revoice import (
    FrameReader,
    PasteJob,
    RevoiceConfig,
    StageTimer,
    cache_frames,
    pingpong,
    write_pasted,
)
from apb2face.inference.scene.speakers import SceneAudio
from apb2face.inference.scene.tracking import SceneTrack, track_scene

log = logging.getLogger(__name__)

ASSIGN = ("identity", "left-to-right")


@dataclass(frozen=True)
class SceneConfig:
    """How a scene is rendered; validates itself (UserError). The paste-back, smoothing, batching, encoding and
    length limit are the re-voice's (`render`; its `mix` does not apply: the speakers' mix is the sound)."""

    render: RevoiceConfig = field(default_factory=RevoiceConfig)
    assign: str = "identity"  # "identity": faces matched to speakers by who they are; "left-to-right": by position
    fps: float = 25.0  # output frame rate of a still image (a video keeps its own)
    seed: int = DEFAULT_SEED  # natural motion of a still scene: face i sways and blinks with seed + i
    max_faces: int = 6  # the face mesh looks for at most this many faces
    min_presence: float = 0.2  # a video track found in fewer than this fraction of frames is a false detection

    def __post_init__(self) -> None:
        if self.assign not in ASSIGN:
            raise UserError(f"assign must be one of {', '.join(ASSIGN)}, got {self.assign!r}")
        if self.render.mix:
            raise UserError("mix does not apply to a scene (its sound is the speakers' mix)")
        check_fps(self.fps)
        if not 1 <= self.max_faces <= 16:
            raise UserError(f"max_faces must be 1 to 16, got {self.max_faces}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise UserError(f"min_presence must lie in [0, 1], got {self.min_presence:g}")


# ---------------------------------------------------------------------------------------------------------- cast


@dataclass(frozen=True)
class SceneFace:
    """Who a face of the scene is (`index` 0 = leftmost) and who drives it."""

    index: int
    identity: str | None  # the checkpoint identity rendered here; None: no known person, left as it is
    distance: float | None  # face-embedding distance to that identity (None: not measured)
    speaker: str | None  # the speaker whose track drives it; None: it listens


def cast_faces(pipe: APB2FacePipeline, scene: SceneTrack, names: tuple[str, ...], assign: str) -> list[SceneFace]:
    """Pair the scene's faces with identities and speakers (see the module docstring). UserError naming the scene
    for more speakers than faces and for a speaker who is no face in it."""
    if len(names) > len(scene.faces):
        raise UserError(
            f"{len(names)} speakers ({', '.join(names)}) but the scene has {len(scene.faces)} face(s)", scene.path
        )
    if not pipe.references:
        raise UserError("the checkpoint bundles no identities to render the scene's faces with")
    if assign == "left-to-right":
        for name in names:
            if name not in pipe.references:
                raise UserError(
                    f"speaker {name} is not an identity of this checkpoint (identities: {', '.join(pipe.identities)})"
                )
        fixed = dict(enumerate(names))
    else:
        fixed = {}
    matched = match_identities(pipe, scene.crops, skip=set(fixed), taken=set(fixed.values()))
    faces = []
    for i in range(len(scene.faces)):
        if i in fixed:
            faces.append(SceneFace(i, fixed[i], None, fixed[i]))
            continue
        identity, distance = matched.get(i, (None, None))
        faces.append(SceneFace(i, identity, distance, identity if identity in names else None))
    missing = [name for name in names if all(f.speaker != name for f in faces)]
    if missing:
        seen = ", ".join(f.identity or "unknown" for f in faces)
        raise UserError(
            f"speaker {missing[0]} is no face in the scene (faces left to right: {seen}); "
            "--assign left-to-right gives speakers to faces by position",
            scene.path,
        )
    for face in faces:
        if face.identity is None:
            log.warning("%s: face %d is none of the checkpoint's people; it is left as it is", scene.path, face.index)
    return faces


def match_identities(
    pipe: APB2FacePipeline, crops: list[np.ndarray], skip: set[int], taken: set[str]
) -> dict[int, tuple[str, float]]:
    """face index -> (identity, distance): the closest (face, identity) pairs first, each used once, within the
    same-person distance; faces in `skip` and identities in `taken` are left out."""
    pairs = []
    for i, crop in enumerate(crops):
        if i in skip:
            continue
        distances = pipe.identity_distances(crop) or {}
        pairs += [(d, i, name) for name, d in distances.items() if d <= SAME_PERSON_DISTANCE and name not in taken]
    out: dict[int, tuple[str, float]] = {}
    used = set(taken)
    for d, i, name in sorted(pairs):
        if i not in out and name not in used:
            out[i] = (name, d)
            used.add(name)
    return out


# -------------------------------------------------------------------------------------------------------- render


@dataclass(frozen=True)
class SceneReport:
    frames: int  # output frames written
    fps: float
    size: tuple[int, int]  # (H, W)
    faces: list[SceneFace]
    source_frames: int  # frames of the scene (1 for a still)
    passed_through: int  # output frames where some face was not found (that face unchanged)
    seconds: dict[str, float]  # wall time per stage
    wall_seconds: float


def generate_scene(
    pipe: APB2FacePipeline,
    scene: str | Path,
    audio: SceneAudio,
    out: str | Path,
    config: SceneConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_frame: Callable[[int, int, np.ndarray, list[Pasted | None]], None] | None = None,
) -> SceneReport:
    """Write `out` (MP4 at the scene's resolution): every known face of `scene` (an image or a video) talking with
    its speaker's track of `audio` or listening. `on_frame(k, source_index, frame, pasted)` sees each output frame
    before it is encoded, `pasted` one entry per rendered face (`SceneReport.faces` with an identity, in order)."""
    config = config or SceneConfig()
    started = time.perf_counter()
    timer = StageTimer()
    track = track_scene(scene, config, timer, crop_scale=pipe.crop_scale)
    check_fps(track.fps)
    faces = cast_faces(pipe, track, audio.names, config.assign)
    n = A.num_video_frames(len(audio.mix), track.fps, audio.sample_rate)
    ticks = scene_ticks(track)
    source = ticks[pingpong(len(ticks), n)]
    silence = np.zeros(len(audio.mix), np.float32)
    jobs = []
    for face in faces:
        if face.identity is None:
            continue
        face_track = track.faces[face.index]
        speech = audio.tracks[audio.names.index(face.speaker)] if face.speaker is not None else silence
        pose, eyes = face_motion(track, face.index, source, config)
        jobs.append(
            PasteJob(
                pipe.prepare_reference(face.identity),
                pipe.prepare_audio(speech, audio.sample_rate, track.fps),
                face_track,
                pose,
                eyes,
                ColourMatcher(config.render.compose),
            )
        )
        log.info(
            "face %d: %s%s, %s",
            face.index,
            face.identity,
            "" if face.distance is None else f" (face distance {face.distance:.2f})",
            f"speaks as {face.speaker}" if face.speaker else "listens",
        )
    render = config.render
    with Mp4Writer(
        out, fps=track.fps, audio_rate=audio.sample_rate, size=track.shape, crf=render.crf, preset=render.preset
    ) as writer:
        with scene_frames(track, render, timer) as frames:
            sound, compose = audio.mix, render.compose
            passed = write_pasted(
                pipe, jobs, source, frames, writer, sound, compose, render.batch_size, timer, progress, on_frame
            )
    return SceneReport(
        frames=n,
        fps=track.fps,
        size=track.shape,
        faces=faces,
        source_frames=len(track.pts),
        passed_through=passed,
        seconds=dict(timer.seconds),
        wall_seconds=time.perf_counter() - started,
    )


def face_motion(
    track: SceneTrack, index: int, source: np.ndarray, config: SceneConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(pose (n, 3), eyes (n, 2)) driving face `index` in each output frame: the tracked face's own in a video; in a
    still, natural sway and blinks around the face's pose (clipped as `sway_centre` clips a photo's), one seed per
    face so the people do not move in step."""
    face = track.faces[index]
    if not track.still:
        return face.pose[source], face.eyes[source]
    motion = still_motion(track, index, config).take(len(source))
    return motion.pose, motion.eyes


def still_motion(track: SceneTrack, index: int, config: SceneConfig) -> NaturalMotion:
    """The natural motion of face `index` of a still, from its first frame on (see `face_motion`)."""
    centre = tuple(float(v) for v in np.clip(track.faces[index].pose[0], -MAX_CENTRE_POSE_DEG, MAX_CENTRE_POSE_DEG))
    return NaturalMotion(track.fps, config.seed + index, centre=centre)


def scene_ticks(track: SceneTrack) -> np.ndarray:
    """The source frame at each tick of the scene's rate (a still: its one frame); output frame k shows
    `ticks[pingpong(len(ticks), ...)[k]]`."""
    return np.zeros(1, np.int64) if track.still else track.faces[0].ticks()


@contextlib.contextmanager
def scene_frames(track: SceneTrack, render: RevoiceConfig, timer: StageTimer) -> Iterator[Callable[[int], np.ndarray]]:
    """The scene's frames by source index: the still itself, or a `FrameReader` over the video."""
    if track.image is not None:
        image = track.image
        yield lambda _index: image
        return
    with FrameReader(track.path, track.pts, cache_frames(track.shape, render.cache_megabytes), timer) as reader:
        yield reader.__getitem__
