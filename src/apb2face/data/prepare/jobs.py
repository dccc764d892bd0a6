"""What `prepare` works on: its settings, one job per input video (identity, clip-name prefix, audio source) and the
result of each job."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from apb2face.data.audio import SAMPLE_RATE
from apb2face.data.face import FaceSettings
from apb2face.data.format import ClipRecord
from apb2face.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v", ".flv", ".ts", ".wmv", ".3gp")
SIDECAR_AUDIO_EXTENSIONS = (".wav", ".flac", ".m4a", ".mp3", ".ogg", ".aac")
REPORTS_DIR = "reports"
WORK_DIR = ".prepare-work"


@dataclass
class PrepareConfig:
    """Settings of `apb2face prepare` (all have command-line flags or `--set key=value`)."""

    size: int = 256  # output crop side, pixels
    fps: float = 25.0
    sample_rate: int = SAMPLE_RATE
    detect_size: int = FaceSettings.detect_size  # the detector sees frames with their long side at most this
    min_confidence: float = FaceSettings.min_confidence
    crop_scale: float = FaceSettings.crop_scale  # crop side = crop_scale x the longer side of the landmark box
    smooth_centre: float = 3.0  # Gaussian sigma (frames) of the crop centre
    smooth_side: float = 6.0  # Gaussian sigma (frames) of the crop side
    min_face: float = FaceSettings.min_face  # inter-ocular distance (source pixels) below which a face is missing
    scene_cut: float = 30.0  # mean absolute difference (0-255) of consecutive 64x36 grey thumbnails
    face_jump: float = 0.2  # relative change of crop side, or centre shift / side, between frames that ends a track
    min_clip_seconds: float = 1.0
    max_clip_seconds: float = 10.0
    pause_seconds: float = 0.3  # a silence at least this long ends a clip
    silence_db: float = -30.0  # frame RMS this far below the loud (95th percentile) level counts as silence
    max_offset_frames: int = 10  # audio/video offsets searched in +-frames
    offset_min_r: float = 0.2  # smallest correlation peak that can count as clear
    offset_margin: float = 0.08  # the peak must beat the shifted-audio null (95th pct) by this much
    offset_min_frames: int = 2  # smaller clear offsets are within the measure's resolution and left alone
    offset_min_seconds: float = 6.0  # shorter videos are measured but never corrected (the peak is unreliable)
    eye_percentile: float = FaceSettings.eye_percentile  # openness = EAR / (this percentile of the identity's EAR)
    pose_reference: Literal["calibrated", "identity-median"] = "calibrated"
    split: Literal["clip", "time"] = "clip"
    test_fraction: float = 0.2
    seed: int = 0
    contact_tiles: int = 16
    # several people in one video (a job with `people`): active-speaker detection, data/prepare/active_speaker.py
    max_people: int = 4  # faces the mesh looks for in each frame
    min_presence: float = 0.2  # a face seen in fewer of the frames is a false detection and dropped
    speaker_window_seconds: float = 2.0  # mouth/audio correlation window
    speaker_max_lag_frames: int = 6  # audio/video lags searched for the whole file
    speaker_margin: float = 0.1  # the speaker's r must beat every other face's by this much
    speaker_min_r: float = 0.1  # and reach this
    speaker_min_turn_seconds: float = 1.0  # shorter turns go to their neighbours
    speaker_bridge_seconds: float = 0.5  # shorter silences inside speech stay in the turn
    # ... when the caller gives an expected mouth (prepare --listen-with): these replace window, max lag and margin
    speaker_listen_window_seconds: float = 2.5  # mouth/expected-mouth correlation window
    speaker_listen_max_lag_frames: int = 8  # lags searched, for each face on its own
    speaker_listen_margin: float = 0.15
    speaker_listen_detrend_seconds: float = 0.5  # slower drift of both mouths is removed before correlating
    # voices first (data/prepare/voices.py): the speech is split into voices, then each voice is given to the face
    # whose mouth follows it best over all of its frames; off: every moment is decided by the mouths alone
    speaker_voices: bool = True
    speaker_same_voice: float = 0.8  # voice clusters whose centres are more alike (cosine) are one voice
    speaker_voice_switch_cost: float = 2.0  # Viterbi cost of a change of voice (per-frame scores are cosines)
    speaker_voice_min_r: float = 0.0  # a voice no face's mouth follows better than this (mean r) is nobody's

    def __post_init__(self) -> None:
        if self.size < 16 or self.size > 2048:
            raise ValueError(f"size must be 16..2048, got {self.size}")
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError("fps and sample_rate must be positive")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.min_clip_seconds <= 0 or self.max_clip_seconds < 2 * self.min_clip_seconds:
            raise ValueError("need 0 < min_clip_seconds and max_clip_seconds >= 2 x min_clip_seconds")
        if self.detect_size < 128:
            raise ValueError(f"detect_size must be at least 128, got {self.detect_size}")
        if not 2 <= self.max_people <= 10:
            raise ValueError(f"max_people must be 2..10, got {self.max_people}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1], got {self.min_presence}")
        if self.speaker_window_seconds * self.fps < 5 or self.speaker_max_lag_frames < 0:
            raise ValueError("speaker_window_seconds must span at least 5 frames and speaker_max_lag_frames be >= 0")
        if self.speaker_margin < 0 or not -1.0 <= self.speaker_min_r <= 1.0:
            raise ValueError("speaker_margin must be >= 0 and speaker_min_r in [-1, 1]")
        if self.speaker_min_turn_seconds <= 0 or self.speaker_bridge_seconds < 0:
            raise ValueError("speaker_min_turn_seconds must be > 0 and speaker_bridge_seconds >= 0")
        if self.speaker_listen_window_seconds * self.fps < 5 or self.speaker_listen_max_lag_frames < 0:
            raise ValueError("speaker_listen_window_seconds must span 5 frames and speaker_listen_max_lag_frames >= 0")
        if self.speaker_listen_margin < 0 or self.speaker_listen_detrend_seconds <= 0:
            raise ValueError("speaker_listen_margin must be >= 0 and speaker_listen_detrend_seconds > 0")
        if not -1.0 <= self.speaker_same_voice <= 1.0 or not -1.0 <= self.speaker_voice_min_r <= 1.0:
            raise ValueError("speaker_same_voice and speaker_voice_min_r must be in [-1, 1]")
        if self.speaker_voice_switch_cost < 0:
            raise ValueError(f"speaker_voice_switch_cost must be >= 0, got {self.speaker_voice_switch_cost}")

    @property
    def min_clip_frames(self) -> int:
        return max(1, round(self.min_clip_seconds * self.fps))

    @property
    def max_clip_frames(self) -> int:
        return max(2, round(self.max_clip_seconds * self.fps))

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / self.fps

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))


@dataclass(frozen=True)
class VideoJob:
    """One input video: where its audio comes from, whose face it shows, and the prefix of its clip names."""

    path: str
    identity: str
    stem: str
    audio: str | None = None  # a separate audio file; None = the video's own track
    scene: bool = False  # several people in the video: each face its own identity, given the stretches it speaks
    people: tuple[str, ...] = ()  # their names, left to right (empty: <identity>_face0, _face1, ... )

    def person_names(self, faces: int) -> list[str]:
        """The identity of each of `faces` faces, left to right (UserError when the names given do not fit)."""
        if not self.people:
            return [f"{self.identity}_face{i}" for i in range(faces)]
        if len(self.people) != faces:
            found = f"found {faces} face{'s' if faces != 1 else ''}"
            raise UserError(f"{found}, but {len(self.people)} names were given ({', '.join(self.people)})", self.path)
        return list(self.people)


@dataclass
class VideoResult:
    job: VideoJob
    records: list[ClipRecord] = field(default_factory=list)
    ears: dict[str, np.ndarray] = field(default_factory=dict)  # clip name -> (N, 2) raw EAR (left, right)
    pitch: dict[str, np.ndarray] = field(default_factory=dict)  # clip name -> (N,) calibrated pitch
    test_clips: list[str] = field(default_factory=list)  # clip keys held out by split=time
    report: dict = field(default_factory=dict)
    error: str | None = None


def discover_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Video files named directly, and those inside named directories (recursively, sorted). Missing paths are kept
    so that they fail as one line each, like any other bad file."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        found += _videos_under(p) if p.is_dir() else [p]
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.absolute()  # not resolved: two links to one file may come with different audio beside them
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _videos_under(folder: Path) -> list[Path]:
    """Video files below `folder`, sorted, skipping hidden files and folders."""
    return sorted(
        q
        for q in folder.rglob("*")
        if q.is_file()
        and q.suffix.lower() in VIDEO_EXTENSIONS
        and not any(part.startswith(".") for part in q.relative_to(folder).parts)
    )


def sidecar_audio(video: Path) -> Path | None:
    """A same-named audio file beside the video (name.wav, name.flac, ...), if any."""
    for ext in SIDECAR_AUDIO_EXTENSIONS:
        for cand in (video.with_suffix(ext), video.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    return None


def safe_name(text: str) -> str:
    """A dataset-safe identity/clip name: letters, digits, '_', '-', '.'; never starting with '.'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
    name = name.lstrip(".")
    return name or "video"


def read_identity_map(path: str | Path) -> list[tuple[str, str]]:
    """Lines `PATTERN IDENTITY` (glob on the video's file name; '#' comments); the first matching line wins.
    `PATTERN NAME,NAME,...` names the people of a video with several, left to right."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read identity map ({exc.strerror})", path) from None
    rules = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise UserError(f"line {number}: expected 'PATTERN IDENTITY', got {line!r}", path)
        for name in parts[1].split(","):
            if safe_name(name) != name:
                raise UserError(f"line {number}: identity {name!r} may use only letters, digits, '_', '-', '.'", path)
        rules.append((parts[0], parts[1]))
    return rules


def make_jobs(
    videos: list[Path],
    *,
    identity: str | None = None,
    identity_map: list[tuple[str, str]] | None = None,
    audio: str | Path | None = None,
    people: list[str] | None = None,
) -> list[VideoJob]:
    """One job per video: identity from --identity, else the first matching map rule, else the file's stem.

    `people` (or a map rule `NAME,NAME`) says the video shows several people: their names left to right, or an
    empty list for automatic names (<identity>_face0, _face1, ...)."""
    if audio is not None and len(videos) != 1:
        raise UserError(f"--audio goes with exactly one video, got {len(videos)}")
    for name in [identity] + list(people or []):
        if name is not None and safe_name(name) != name:
            raise UserError(f"identity {name!r} may use only letters, digits, '_', '-', '.'")
    if people is not None and len(people) == 1:
        raise UserError(f"one name ({people[0]}) for a video with several people: name each face, left to right")
    if people and len(set(people)) != len(people):
        raise UserError(f"the names of the people must differ, got {', '.join(people)}")
    jobs = []
    used: dict[tuple[str, str], int] = {}
    for video in videos:
        stem = safe_name(video.stem)
        ident = identity or _mapped_identity(video, identity_map or []) or stem
        names = tuple(people or ())
        if "," in ident:
            names, ident = tuple(ident.split(",")), stem
        n = used.get((ident, stem), 0)
        used[(ident, stem)] = n + 1
        if n:
            stem = f"{stem}-{n + 1}"
        side = Path(audio) if audio is not None else sidecar_audio(video)
        scene = people is not None or bool(names)
        jobs.append(VideoJob(str(video), ident, stem, None if side is None else str(side), scene, names))
    return jobs


def _mapped_identity(video: Path, rules: list[tuple[str, str]]) -> str | None:
    """The identity of the first rule whose glob matches the video's file name (or its whole path)."""
    for pattern, name in rules:
        if fnmatch.fnmatch(video.name, pattern) or fnmatch.fnmatch(str(video), pattern):
            return name
    return None
