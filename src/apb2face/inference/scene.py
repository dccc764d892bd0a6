"""Several people in one scene, each with their own voice: every face of a still image or a video is matched to a
checkpoint identity, driven by its own speech, and pasted back into the scene at its own resolution.

    audio = speakers_from_files([("id00", "alice.wav"), ("id03", "bob.wav")])
    report = generate_scene(pipe, "two_people.png", audio, "talk.mp4")

Steps:

1. audio      `SceneAudio`: one track per speaker (silence where that speaker does not speak) and the mix the
              output plays. From one file per speaker (`speakers_from_files`: shorter tracks padded with silence),
              from one multi-channel file (`speakers_from_channels`: channel i is the i-th name), or from one mixed
              file and a timeline of turns (`speakers_from_timeline`: `start,end,name` rows in seconds)
2. track      `track_scene`: a still image is read once (the face mesh on the image, every face); a video is decoded
              once with a multi-face mesh and each detection joins the nearest track (`associate`); each face
              becomes a `revoice.FaceTrack`, ordered left to right
3. cast       `cast_faces`: each face's crop is embedded (`pipeline.identity_distances`, dlib) and faces and
              identities are paired nearest first, within the same-person distance; with `assign="left-to-right"`
              the i-th speaker takes the i-th face from the left instead. A face that is no known person stays as
              it is
4. render     `generate_scene`: per face, its speaker's track (or silence: a listener's mouth stays closed) drives
              the model; pose and blinks follow the tracked face in a video (played forward and backward while the
              audio lasts, as `revoice` does), or natural motion per face for a still; every face is pasted with
              the full-frame paste-back (`revoice.write_pasted`)
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
from apb2face.data.face import FaceMesh, FaceSettings, crop_box_from_landmarks, crop_image
from apb2face.data.identity import SAME_PERSON_DISTANCE
from apb2face.data.video import Mp4Writer, frame_to_rgb
from apb2face.errors import UserError
from apb2face.inference.compose import ColourMatcher, Pasted
from apb2face.inference.faces import detect_video_faces, read_image
from apb2face.inference.motion import DEFAULT_SEED, NaturalMotion
from apb2face.inference.pipeline import (
    IMAGE_SUFFIXES,
    MAX_CENTRE_POSE_DEG,
    OUTPUT_SAMPLE_RATE,
    APB2FacePipeline,
    check_fps,
)
from apb2face.inference.revoice import (
    MAX_FRAME_PIXELS,
    FaceTrack,
    FrameReader,
    PasteJob,
    RevoiceConfig,
    StageTimer,
    TrackBuilder,
    cache_frames,
    check_video_size,
    decoded_frames,
    pingpong,
    write_pasted,
)

log = logging.getLogger(__name__)

ASSIGN = ("identity", "left-to-right")
IDENTIFY_SIDE = 256  # px: each face is cut at this size for the face recogniser
MATCH_GATE = 0.6  # a detection joins a track whose last box centre is within this fraction of the box side


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


# ------------------------------------------------------------------------------------------------------ 1. audio


@dataclass(frozen=True)
class SceneAudio:
    """Who speaks when: `tracks[i]` drives speaker `names[i]`'s face (silence where they do not speak); `mix` is
    what the output plays. All at `sample_rate`, all of one length."""

    names: tuple[str, ...]
    tracks: np.ndarray  # (S, samples) float32
    mix: np.ndarray  # (samples,) float32 in [-1, 1]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.mix) / self.sample_rate


@dataclass(frozen=True)
class Turn:
    """One timeline row: `name` speaks from `start` to `end` seconds (`line` of the file, for messages)."""

    start: float
    end: float
    name: str
    line: int


def parse_speaker(text: str) -> tuple[str, Path | None]:
    """A `--speaker` value: "NAME=AUDIO" (NAME's own speech) or "NAME" (a channel of --audio, or an order)."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not name or "," in name:
        raise UserError(f"--speaker needs NAME=AUDIO or NAME (a checkpoint identity), got {text!r}")
    if sep and not path:
        raise UserError(f"--speaker {name}= names no audio file")
    return name, Path(path) if sep else None


def check_names(names: list[str], where: str | Path | None = None) -> None:
    """UserError when a speaker is named twice."""
    seen = set()
    for name in names:
        if name in seen:
            raise UserError(f"speaker {name} is given twice", where)
        seen.add(name)


def mixdown(tracks: np.ndarray) -> np.ndarray:
    """The speakers' tracks summed, scaled down only if the sum would clip."""
    mixed = np.asarray(tracks, np.float32).sum(axis=0)
    peak = float(np.abs(mixed).max(initial=0.0))
    return mixed / peak if peak > 1.0 else mixed


def speakers_from_files(
    speakers: list[tuple[str, str | Path]], max_seconds: float | None = None, sample_rate: int = OUTPUT_SAMPLE_RATE
) -> SceneAudio:
    """One audio file per speaker; tracks of different lengths are padded with silence to the longest (logged)."""
    if not speakers:
        raise UserError("a scene needs at least one speaker")
    check_names([name for name, _ in speakers])
    loaded = [A.load_audio(path, sample_rate, max_seconds=max_seconds) for _, path in speakers]
    length = max(len(a) for a in loaded)
    if any(len(a) != length for a in loaded):
        lengths = ", ".join(f"{name} {len(a) / sample_rate:.2f} s" for (name, _), a in zip(speakers, loaded))
        log.info("speaker tracks differ in length (%s): padded with silence to %.2f s", lengths, length / sample_rate)
    tracks = np.zeros((len(loaded), length), np.float32)
    for i, a in enumerate(loaded):
        tracks[i, : len(a)] = a
    return SceneAudio(tuple(name for name, _ in speakers), tracks, mixdown(tracks), sample_rate)


def speakers_from_channels(
    path: str | Path, names: list[str], max_seconds: float | None = None, sample_rate: int = OUTPUT_SAMPLE_RATE
) -> SceneAudio:
    """One file with one channel per speaker: channel i is `names[i]`'s speech."""
    check_names(names, path)
    channels = A.load_channels(path, sample_rate, max_seconds=max_seconds)
    if len(channels) != len(names):
        raise UserError(
            f"audio has {len(channels)} channel(s) but {len(names)} speaker(s) are named ({', '.join(names)}); "
            "give one --speaker NAME per channel, in channel order",
            path,
        )
    return SceneAudio(tuple(names), channels, mixdown(channels), sample_rate)


def read_timeline(path: str | Path) -> list[Turn]:
    """`start,end,name` rows (seconds; a header line and # comments allowed), sorted by start. UserError naming the
    file and line for a malformed row, an empty or negative turn, or two turns that overlap."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError("not a text timeline (start,end,name rows expected)", path) from None
    turns: list[Turn] = []
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            if len(fields) != 3:
                raise ValueError
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            if header_allowed:  # the first row may be a header
                header_allowed = False
                continue
            raise UserError(
                f"line {number}: expected start,end,name (seconds, seconds, speaker), got {line!r}", path
            ) from None
        header_allowed = False
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start or not fields[2]:
            raise UserError(f"line {number}: a turn needs 0 <= start < end and a name, got {line!r}", path) from None
        turns.append(Turn(start, end, fields[2], number))
    if not turns:
        raise UserError("timeline has no turns", path)
    turns.sort(key=lambda t: (t.start, t.end))
    for before, after in zip(turns, turns[1:]):
        if after.start < before.end:
            raise UserError(
                f"lines {before.line} and {after.line} overlap ({before.name} {before.start:g}-{before.end:g} s, "
                f"{after.name} {after.start:g}-{after.end:g} s); one speaker at a time",
                path,
            )
    return turns


def speakers_from_timeline(
    audio: str | Path,
    timeline: str | Path,
    names: list[str] | None = None,
    max_seconds: float | None = None,
    sample_rate: int = OUTPUT_SAMPLE_RATE,
) -> SceneAudio:
    """One mixed file and its turns: each speaker's track is the mix inside their turns and silence elsewhere; the
    output plays the mix as it is. Speakers are `names` in that order (every timeline name among them), or the
    timeline's names in order of first appearance."""
    turns = read_timeline(timeline)
    heard = list(dict.fromkeys(t.name for t in turns))
    if names is None:
        names = heard
    check_names(names, timeline)
    unknown = [n for n in heard if n not in names]
    if unknown:
        raise UserError(f"speaker {unknown[0]} is not among the --speaker names ({', '.join(names)})", timeline)
    mix = A.load_audio(audio, sample_rate, max_seconds=max_seconds)
    last = max(t.end for t in turns)
    if last > len(mix) / sample_rate + 0.5:
        log.warning("%s: turns run to %.2f s, the audio only to %.2f s", timeline, last, len(mix) / sample_rate)
    tracks = np.zeros((len(names), len(mix)), np.float32)
    for turn in turns:
        lo, hi = (min(len(mix), round(t * sample_rate)) for t in (turn.start, turn.end))
        tracks[names.index(turn.name), lo:hi] = mix[lo:hi]
    return SceneAudio(tuple(names), tracks, np.clip(mix, -1.0, 1.0), sample_rate)


# ------------------------------------------------------------------------------------------------------ 2. track


@dataclass(frozen=True)
class SceneTrack:
    """Every face of a scene, left to right, and how to read its frames."""

    path: Path
    shape: tuple[int, int]  # (H, W)
    fps: float  # the video's rate; for a still, the configured output rate
    faces: list[FaceTrack]
    crops: list[np.ndarray]  # (IDENTIFY_SIDE, IDENTIFY_SIDE, 3) of each face, for the face recogniser
    image: np.ndarray | None  # a still's pixels (None for a video)
    pts: np.ndarray  # (N,) the video frames' timestamps (one 0 for a still)

    @property
    def still(self) -> bool:
        return self.image is not None


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def track_scene(
    path: str | Path, config: SceneConfig, timer: StageTimer | None = None, crop_scale: float | None = None
) -> SceneTrack:
    """Find every face of a still image, or track every face through a video (UserError when there is none)."""
    timer = timer or StageTimer()
    settings = FaceSettings()
    crop_scale = settings.crop_scale if crop_scale is None else crop_scale
    path = Path(path)
    if is_image(path):
        return track_still(path, config, settings, crop_scale)
    return track_scene_video(path, config, settings, crop_scale, timer)


def track_still(path: Path, config: SceneConfig, settings: FaceSettings, crop_scale: float) -> SceneTrack:
    image = read_image(path)
    if image.shape[0] * image.shape[1] > MAX_FRAME_PIXELS:
        raise UserError(f"image is {image.shape[1]}x{image.shape[0]}; a scene takes up to 4K (4096x2304)", path)
    with FaceMesh(video=False, min_confidence=settings.min_confidence, max_faces=config.max_faces) as mesh:
        found = distinct(detect_video_faces(mesh, image, settings), crop_scale)
    if not found:
        raise UserError("no face found in the scene", path)
    found.sort(key=lambda lm: crop_box_from_landmarks(lm, crop_scale).cx)
    faces, crops = [], []
    for landmarks in found:
        builder = TrackBuilder(crop_scale, settings.eye_percentile)
        builder.add(landmarks)
        faces.append(builder.finish(image.shape[:2], config.fps, np.zeros(1), np.zeros(1), config.render))
        crops.append(identify_crop(image, landmarks))
    return SceneTrack(path, image.shape[:2], config.fps, faces, crops, image, np.zeros(1, np.int64))


def track_scene_video(
    path: Path, config: SceneConfig, settings: FaceSettings, crop_scale: float, timer: StageTimer
) -> SceneTrack:
    info = check_video_size(path)
    pts, times = [], []
    tracks: list[Tracklet] = []
    shape = (info.height, info.width)
    with FaceMesh(video=True, min_confidence=settings.min_confidence, max_faces=config.max_faces) as mesh:
        for frame in decoded_frames(path, timer):
            with timer("decode"):
                rgb = frame_to_rgb(frame)
            with timer("track"):
                shape = rgb.shape[:2]
                pts.append(len(pts) if frame.pts is None else int(frame.pts))
                times.append(float(frame.time) if frame.time is not None else len(times) / info.fps)
                found = distinct(detect_video_faces(mesh, rgb, settings), crop_scale)
                associate(tracks, found, rgb, len(pts) - 1, crop_scale, settings)
    if not pts:
        raise UserError("video stream has no frames", path)
    kept = [t for t in tracks if t.presence(len(pts)) >= config.min_presence]
    if not kept:
        raise UserError("no face found in the scene", path)
    if len(kept) < len(tracks):
        log.info("%s: %d short face track(s) dropped as false detections", path, len(tracks) - len(kept))
    kept.sort(key=lambda t: t.median_x())
    faces = [t.builder.finish(shape, info.fps, np.asarray(pts), np.asarray(times), config.render) for t in kept]
    for i, face in enumerate(faces):
        if not face.found.all():
            log.info("%s: face %d not found in %d of %d frames", path, i + 1, (~face.found).sum(), len(face))
    return SceneTrack(path, shape, info.fps, faces, [t.crop for t in kept], None, np.asarray(pts, np.int64))


class Tracklet:
    """One face followed through a video: its builder, last box and a crop for the face recogniser."""

    def __init__(self, crop_scale: float, settings: FaceSettings, frames_before: int) -> None:
        self.builder = TrackBuilder(crop_scale, settings.eye_percentile)
        for _ in range(frames_before):
            self.builder.add(None)
        self.last: tuple[float, float, float] | None = None
        self.crop: np.ndarray | None = None

    def add(self, landmarks: np.ndarray | None, frame: np.ndarray) -> None:
        self.builder.add(landmarks)
        if landmarks is not None:
            box = crop_box_from_landmarks(landmarks, self.builder.crop_scale)
            self.last = (box.cx, box.cy, box.side)
            if self.crop is None:
                self.crop = identify_crop(frame, landmarks)

    def presence(self, frames: int) -> float:
        return sum(self.builder.found) / max(1, frames)

    def median_x(self) -> float:
        boxes = np.asarray(self.builder.boxes)[np.asarray(self.builder.found)]
        return float(np.median(boxes[:, 0]))


def associate(
    tracks: list[Tracklet],
    found: list[np.ndarray],
    frame: np.ndarray,
    index: int,
    crop_scale: float,
    settings: FaceSettings,
) -> None:
    """Give frame `index`'s faces to the tracks nearest to them (box centres, nearest pair first, within MATCH_GATE
    box sides; the mesh does not keep its faces' order); a face near no track starts a new one."""
    boxes = [crop_box_from_landmarks(lm, crop_scale) for lm in found]
    pairs = []
    for t, track in enumerate(tracks):
        if track.last is None:
            continue
        cx, cy, side = track.last
        for f, box in enumerate(boxes):
            d = float(np.hypot(box.cx - cx, box.cy - cy)) / max(side, 1.0)
            if d < MATCH_GATE:
                pairs.append((d, t, f))
    given: dict[int, int] = {}
    taken: set[int] = set()
    for _d, t, f in sorted(pairs):
        if t not in given and f not in taken:
            given[t] = f
            taken.add(f)
    for t, track in enumerate(tracks):
        track.add(found[given[t]] if t in given else None, frame)
    for f, landmarks in enumerate(found):
        if f not in taken:
            track = Tracklet(crop_scale, settings, index)
            track.add(landmarks, frame)
            tracks.append(track)


def distinct(found: list[np.ndarray], crop_scale: float) -> list[np.ndarray]:
    """The faces minus any second mesh on the same face (centres closer than MATCH_GATE / 2 box sides)."""
    kept: list[np.ndarray] = []
    boxes = []
    for landmarks in found:
        box = crop_box_from_landmarks(landmarks, crop_scale)
        if all(np.hypot(box.cx - b.cx, box.cy - b.cy) >= MATCH_GATE / 2 * max(b.side, 1.0) for b in boxes):
            kept.append(landmarks)
            boxes.append(box)
    return kept


def identify_crop(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face cut as the dataset cuts faces (so it compares with the checkpoint's identity crops)."""
    return crop_image(frame, crop_box_from_landmarks(landmarks), IDENTIFY_SIDE)


# ------------------------------------------------------------------------------------------------------- 3. cast


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


# ------------------------------------------------------------------------------------------------------ 4. render


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
    ticks = np.zeros(1, np.int64) if track.still else track.faces[0].ticks()
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
    centre = tuple(float(v) for v in np.clip(face.pose[0], -MAX_CENTRE_POSE_DEG, MAX_CENTRE_POSE_DEG))
    motion = NaturalMotion(track.fps, config.seed + index, centre=centre).take(len(source))
    return motion.pose, motion.eyes


@contextlib.contextmanager
def scene_frames(track: SceneTrack, render: RevoiceConfig, timer: StageTimer) -> Iterator[Callable[[int], np.ndarray]]:
    """The scene's frames by source index: the still itself, or a `FrameReader` over the video."""
    if track.image is not None:
        image = track.image
        yield lambda _index: image
        return
    with FrameReader(track.path, track.pts, cache_frames(track.shape, render.cache_megabytes), timer) as reader:
        yield reader.__getitem__
