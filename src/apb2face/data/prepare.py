"""Real videos -> dataset format v1 (`apb2face prepare`): decode, track the face, measure, crop, cut into clips.

Per input video (one identity per video unless told otherwise)::

    decode at a constant 25 fps (VFR and 30 fps sources resampled by timestamp)   video.ConstantRateFrames
    audio of the file, or a same-named .wav beside it, or --audio: mono 16 kHz    audio.load_audio
    per frame: detect + track on a downscaled copy (mediapipe face mesh, video mode), landmarks mapped back to the
      full-resolution frame; scene-cut score from a 64x36 thumbnail; raw crop box from the landmarks
    tracks = runs of frames with a face, broken by a missing face, a scene cut or a face-size/position jump
    crop box smoothed within a track by a zero-phase Gaussian (centre and side separately, bounded look-ahead, so
      only `lookahead` full frames are ever held); crop cut from the full-resolution frame, padded at borders
    pose (solvePnP vs the canonical face, calibrated), eye aspect ratios, mouth opening per frame
    audio/video offset: mouth opening vs audio RMS cross-correlated over +-max_offset frames, tested against
      circularly shifted audio; corrected only when the peak is clear
    clips: tracks cut at pauses in the (corrected) audio, min/max length; with split=time, each video's last
      `test_fraction` of frames is cut off as test clips
    report.json + contact sheet PNG per video; eyes normalised per identity once every video is done

Frames without a face are skipped, never fatal. A file that cannot be prepared fails alone with one line naming it.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import re
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.audio import SAMPLE_RATE, load_audio, num_video_frames, rms_per_frame
from apb2face.data.format import ClipRecord, DatasetWriter
from apb2face.data.video import ConstantRateFrames, probe
from apb2face.errors import UserError
from apb2face.io import atomic_path, write_json

log = logging.getLogger(__name__)

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
    detect_size: int = 640  # the detector sees the frame scaled so that its long side is at most this
    min_confidence: float = 0.5
    crop_scale: float = 1.6  # crop side = crop_scale x the longer side of the landmark bounding box
    smooth_centre: float = 3.0  # Gaussian sigma (frames) of the crop centre
    smooth_side: float = 6.0  # Gaussian sigma (frames) of the crop side
    min_face: float = 24.0  # inter-ocular distance in source pixels below which a face counts as missing
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
    eye_percentile: float = 90.0  # openness = EAR / (this percentile of the identity's EAR), see face.eye_openness
    pose_reference: Literal["calibrated", "identity-median"] = "calibrated"
    split: Literal["clip", "time"] = "clip"
    test_fraction: float = 0.2
    seed: int = 0
    contact_tiles: int = 16

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

    @property
    def min_clip_frames(self) -> int:
        return max(1, round(self.min_clip_seconds * self.fps))

    @property
    def max_clip_frames(self) -> int:
        return max(2, round(self.max_clip_seconds * self.fps))

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / self.fps


@dataclass(frozen=True)
class VideoJob:
    """One input video: where its audio comes from, whose face it shows, and the prefix of its clip names."""

    path: str
    identity: str
    stem: str
    audio: str | None = None  # a separate audio file; None = the video's own track


@dataclass
class VideoResult:
    job: VideoJob
    records: list[ClipRecord] = field(default_factory=list)
    ears: dict[str, np.ndarray] = field(default_factory=dict)  # clip name -> (N, 2) raw EAR (left, right)
    pitch: dict[str, np.ndarray] = field(default_factory=dict)  # clip name -> (N,) calibrated pitch
    test_clips: list[str] = field(default_factory=list)  # clip keys held out by split=time
    report: dict = field(default_factory=dict)
    error: str | None = None


# --------------------------------------------------------------------------------------------------------------------
# inputs and identities


def discover_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Video files named directly, and those inside named directories (recursively, sorted). Missing paths are kept
    so that they fail as one line each, like any other bad file."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(
                q
                for q in p.rglob("*")
                if q.is_file()
                and q.suffix.lower() in VIDEO_EXTENSIONS
                and not any(part.startswith(".") for part in q.relative_to(p).parts)
            )
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.absolute()  # not resolved: two links to one file may come with different audio beside them
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


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
    """Lines `PATTERN IDENTITY` (glob on the video's file name; '#' comments); the first matching line wins."""
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
        if safe_name(parts[1]) != parts[1]:
            raise UserError(f"line {number}: identity {parts[1]!r} may use only letters, digits, '_', '-', '.'", path)
        rules.append((parts[0], parts[1]))
    return rules


def make_jobs(
    videos: list[Path],
    *,
    identity: str | None = None,
    identity_map: list[tuple[str, str]] | None = None,
    audio: str | Path | None = None,
) -> list[VideoJob]:
    """One job per video: identity from --identity, else the first matching map rule, else the file's stem."""
    if audio is not None and len(videos) != 1:
        raise UserError(f"--audio goes with exactly one video, got {len(videos)}")
    if identity is not None and safe_name(identity) != identity:
        raise UserError(f"identity {identity!r} may use only letters, digits, '_', '-', '.'")
    jobs = []
    used: dict[tuple[str, str], int] = {}
    for video in videos:
        ident = identity
        if ident is None:
            for pattern, name in identity_map or []:
                if fnmatch.fnmatch(video.name, pattern) or fnmatch.fnmatch(str(video), pattern):
                    ident = name
                    break
        stem = safe_name(video.stem)
        ident = ident or stem
        n = used.get((ident, stem), 0)
        used[(ident, stem)] = n + 1
        if n:
            stem = f"{stem}-{n + 1}"
        side = Path(audio) if audio is not None else sidecar_audio(video)
        jobs.append(VideoJob(str(video), ident, stem, None if side is None else str(side)))
    return jobs


# --------------------------------------------------------------------------------------------------------------------
# signal helpers (pure functions, unit-tested)


def silence_mask(rms: np.ndarray, silence_db: float) -> np.ndarray:
    """Frames whose RMS lies `silence_db` (negative) below the loud level (95th percentile), or is digital silence."""
    loud = float(np.percentile(rms, 95)) if rms.size else 0.0
    if loud <= 1e-6:
        return np.ones(rms.shape, dtype=bool)
    level = 20 * np.log10(np.maximum(rms, 1e-9) / loud)
    return level < silence_db


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def plan_clips(
    segments: list[tuple[int, int]], pause_cuts: np.ndarray, quietness: np.ndarray, min_len: int, max_len: int
) -> list[tuple[int, int]]:
    """Cut each [start, end) segment at the given pause frames into clips of min_len..max_len frames.

    A pause cut is taken when both sides keep at least min_len frames; a piece still longer than max_len is cut at
    its quietest frame (lowest `quietness`) that leaves min_len on each side. Segments shorter than min_len are
    dropped."""
    clips = []
    for s, e in segments:
        if e - s < min_len:
            continue
        cuts = [s]
        for c in np.asarray(pause_cuts, dtype=np.int64):
            if s < c < e and c - cuts[-1] >= min_len and e - c >= min_len:
                cuts.append(int(c))
        cuts.append(e)
        pieces = list(zip(cuts[:-1], cuts[1:]))
        while pieces:
            a, b = pieces.pop(0)
            if b - a <= max_len:
                clips.append((a, b))
                continue
            lo, hi = a + min_len, min(b - min_len, a + max_len)
            c = lo + int(np.argmin(quietness[lo : hi + 1])) if hi >= lo else a + max_len
            pieces.insert(0, (c, b))
            clips.append((a, c))
    return clips


@dataclass
class OffsetEstimate:
    """Audio/video offset. frames > 0: the audio is late (a mouth movement at frame t sounds at t + frames)."""

    frames: int = 0
    r: float = 0.0  # correlation at the best lag
    r_zero: float = 0.0  # correlation without shifting
    null95: float = 0.0  # 95th percentile of the best-lag correlation with circularly shifted audio
    clear: bool = False
    applied: bool = False
    reason: str = ""


def _lagged_corr(x: np.ndarray, y: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Pearson r of x[t] with y[t + lag] over frames where both are finite, for each lag."""
    n = len(x)
    out = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        a, b = (x[: n - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: n + lag])
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10:
            continue
        a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
        den = math.sqrt(float((a * a).sum() * (b * b).sum()))
        out[i] = float((a * b).sum()) / den if den > 0 else np.nan
    return out


def estimate_offset(mouth: np.ndarray, rms: np.ndarray, cfg: PrepareConfig, draws: int = 100) -> OffsetEstimate:
    """Cross-correlate mouth opening (NaN where no face) with audio RMS over +-cfg.max_offset_frames and decide whether
    the best lag is clear: r >= offset_min_r, above the circular-shift null by offset_margin, not at the search
    edge, and better than no shift. Only clear offsets of at least offset_min_frames are to be applied."""
    n = min(len(mouth), len(rms))
    x, y = np.asarray(mouth[:n], np.float64), np.asarray(rms[:n], np.float64)
    valid = int(np.isfinite(x).sum())
    est = OffsetEstimate()
    max_lag = min(cfg.max_offset_frames, max(1, n // 4))
    if valid < max(3 * max_lag, int(2 * cfg.fps)) or float(np.nanstd(x)) < 1e-6 or float(np.std(y)) < 1e-9:
        est.reason = "too little face or speech to measure"
        return est
    lags = np.arange(-max_lag, max_lag + 1)
    c = _lagged_corr(x, y, lags)
    if not np.isfinite(c).any():
        est.reason = "too little overlap to measure"
        return est
    best = int(np.nanargmax(c))
    est.frames, est.r, est.r_zero = int(lags[best]), float(c[best]), float(c[max_lag])
    rng = np.random.default_rng(0)
    min_shift = int(cfg.fps) if n > 4 * cfg.fps else max(1, n // 4)
    nulls = []
    for _ in range(draws):
        shifted = np.roll(y, int(rng.integers(min_shift, n - min_shift + 1)))
        nulls.append(np.nanmax(_lagged_corr(x, shifted, lags)))
    est.null95 = float(np.nanpercentile(nulls, 95))
    if abs(est.frames) == max_lag:
        est.reason = "peak at the edge of the search range"
    elif est.r < cfg.offset_min_r:
        est.reason = f"peak r={est.r:.2f} below {cfg.offset_min_r}"
    elif est.r < est.null95 + cfg.offset_margin:
        est.reason = f"peak r={est.r:.2f} not above shifted-audio null {est.null95:.2f} + {cfg.offset_margin}"
    elif valid < cfg.offset_min_seconds * cfg.fps:
        est.reason = (
            f"peak r={est.r:.2f}, but only {valid / cfg.fps:.1f} s with a face (< {cfg.offset_min_seconds:g} s"
            " needed to trust it)"
        )
    else:
        est.clear = True
        if abs(est.frames) < cfg.offset_min_frames:
            est.reason = "clear; within the measure's resolution, left as is"
        else:
            est.applied = True
            est.reason = "clear; corrected"
    return est


def shift_audio(audio: np.ndarray, frames: int, samples_per_frame: float) -> np.ndarray:
    """Undo an offset of `frames` (audio late if > 0): out[t] = audio[t + offset], zero-filled, same length."""
    k = int(round(frames * samples_per_frame))
    if k == 0:
        return audio
    out = np.zeros_like(audio)
    if k > 0:
        out[: len(audio) - k] = audio[k:]
    else:
        out[-k:] = audio[: len(audio) + k]
    return out


# --------------------------------------------------------------------------------------------------------------------
# per-video analysis


@dataclass
class _Track:
    """Per output frame (tick) measurements of one video, before clips are cut."""

    n: int
    face: np.ndarray  # (n,) bool
    landmarks: np.ndarray  # (n, 478, 3) float32 source pixels (NaN where no face)
    boxes: np.ndarray  # (n, 3) smoothed crop box cx, cy, side (NaN where no face)
    raw_side: np.ndarray  # (n,) unsmoothed box side
    segment: np.ndarray  # (n,) track id (-1 where no face)
    row: np.ndarray  # (n,) row of the crop in the crop store (-1 where no face)
    pose: np.ndarray  # (n, 3) yaw, pitch, roll (calibrated)
    ear: np.ndarray  # (n, 2) left, right
    mouth: np.ndarray  # (n,)
    padded: np.ndarray  # (n,) bool: crop reaches outside the frame
    cuts: int
    jumps: int
    frame_size: tuple[int, int]  # (h, w) of the decoded (rotated) frames


class _CropStore:
    """Crops appended to a raw file as they are made, read back by row through a memory map."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size, self.count = path, size, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "wb")  # noqa: SIM115 (closed in close())

    def append(self, crop: np.ndarray) -> int:
        self._f.write(np.ascontiguousarray(crop, dtype=np.uint8).tobytes())
        self.count += 1
        return self.count - 1

    def close(self) -> np.ndarray:
        self._f.close()
        if self.count == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, self.size, self.size, 3))

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.path.unlink(missing_ok=True)


def _analyse(
    frames: Iterable[np.ndarray],
    cfg: PrepareConfig,
    store: _CropStore,
    max_frames: int,
    progress: Callable[[int], None],
) -> _Track:
    """Detect, track, smooth and crop every frame in one pass, holding at most `lookahead` full frames."""
    sig_c, sig_s = cfg.smooth_centre, cfg.smooth_side
    h = int(math.ceil(3 * max(sig_c, sig_s, 0.0)))
    k_c = np.exp(-0.5 * (np.arange(-h, h + 1) / max(sig_c, 1e-6)) ** 2)
    k_s = np.exp(-0.5 * (np.arange(-h, h + 1) / max(sig_s, 1e-6)) ** 2)
    lms: list[np.ndarray | None] = []
    raw: list[np.ndarray] = []  # (3,) raw box per tick (NaN if none)
    seg: list[int] = []
    pending: deque[tuple[int, np.ndarray]] = deque()  # (tick, full frame) not yet cropped
    boxes, rows, padded = {}, {}, {}
    pose, ear, mouth = {}, {}, {}
    pose_of = face.PoseEstimator()  # warm-started from frame to frame
    cuts = jumps = 0
    seg_id = -1
    prev_thumb = None
    frame_size = (0, 0)

    def finalise(j: int, image: np.ndarray) -> None:
        lo, hi = max(0, j - h), min(len(seg), j + h + 1)
        same = np.array(seg[lo:hi]) == seg[j]
        window = np.nan_to_num(np.array(raw[lo:hi]))  # faceless neighbours have weight 0 (but 0 x NaN is NaN)
        wc = k_c[lo - j + h : hi - j + h] * same
        ws = k_s[lo - j + h : hi - j + h] * same
        cx, cy = (wc[:, None] * window[:, :2]).sum(0) / wc.sum()
        side = float((ws * window[:, 2]).sum() / ws.sum())
        box = face.CropBox(float(cx), float(cy), side)
        ih, iw = image.shape[:2]
        rows[j] = store.append(face.crop_image(image, box, cfg.size))
        boxes[j] = (box.cx, box.cy, box.side)
        padded[j] = cx - side / 2 < 0 or cy - side / 2 < 0 or cx + side / 2 > iw or cy + side / 2 > ih
        lm = lms[j]
        pose[j] = pose_of(lm)
        ear[j] = face.eye_aspect_ratios(lm)
        mouth[j] = face.mouth_opening(lm)

    with face.FaceMesh(video=True, min_confidence=cfg.min_confidence) as mesh:
        for k, image in enumerate(frames):
            if k >= max_frames:
                break
            ih, iw = image.shape[:2]
            frame_size = (ih, iw)
            scale = min(1.0, cfg.detect_size / max(ih, iw))
            if scale < 1.0:
                small = cv2.resize(
                    image, (max(1, round(iw * scale)), max(1, round(ih * scale))), interpolation=cv2.INTER_AREA
                )
            else:
                small = image
            lm = mesh.detect(small)
            grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            thumb = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.int16)
            cut = prev_thumb is not None and float(np.abs(thumb - prev_thumb).mean()) > cfg.scene_cut
            prev_thumb = thumb
            if lm is not None:
                sx, sy = iw / small.shape[1], ih / small.shape[0]
                lm[:, 0] *= sx
                lm[:, 1] *= sy
                lm[:, 2] *= sx
                if face.inter_ocular(lm) < cfg.min_face:
                    lm = None
            if lm is None:
                lms.append(None)
                raw.append(np.full(3, np.nan))
                seg.append(-1)
            else:
                b = face.crop_box_from_landmarks(lm, cfg.crop_scale)
                box = np.array([b.cx, b.cy, b.side])
                new_track = cut or not seg or seg[-1] < 0
                if not new_track:
                    pb = raw[-1]
                    jump = (
                        abs(math.log(box[2] / pb[2])) > math.log1p(cfg.face_jump)
                        or float(np.hypot(*(box[:2] - pb[:2]))) > cfg.face_jump * pb[2]
                    )
                    jumps += int(jump)
                    new_track = jump
                cuts += int(cut)
                if new_track:
                    seg_id += 1
                lms.append(lm)
                raw.append(box)
                seg.append(seg_id)
                pending.append((k, image))
            # a pending frame is final once its look-ahead is known: h ticks later, or its track has ended
            while pending and (pending[0][0] + h <= k or seg[-1] != seg[pending[0][0]]):
                j, img = pending.popleft()
                finalise(j, img)
            if (k + 1) % 25 == 0:
                progress(25)
        while pending:
            j, img = pending.popleft()
            finalise(j, img)
    n = len(seg)
    progress(n % 25)
    track = _Track(
        n=n,
        face=np.array(seg, dtype=np.int64) >= 0 if n else np.zeros(0, bool),
        landmarks=np.full((n, face.canonical_face().shape[0], 3), np.nan, np.float32),
        boxes=np.full((n, 3), np.nan),
        raw_side=np.array([r[2] for r in raw]) if n else np.zeros(0),
        segment=np.array(seg, dtype=np.int64),
        row=np.full(n, -1, np.int64),
        pose=np.full((n, 3), np.nan),
        ear=np.full((n, 2), np.nan),
        mouth=np.full(n, np.nan),
        padded=np.zeros(n, bool),
        cuts=cuts,
        jumps=jumps,
        frame_size=frame_size,
    )
    for j in rows:
        track.landmarks[j] = lms[j]
        track.boxes[j] = boxes[j]
        track.row[j] = rows[j]
        track.pose[j] = pose[j]
        track.ear[j] = ear[j]
        track.mouth[j] = mouth[j]
        track.padded[j] = padded[j]
    return track


def _stream_start(path: str) -> tuple[float, float | None]:
    """Start times (s) of the first video and audio streams as the container states them (audio None if absent)."""
    try:
        with av.open(path) as c:
            v = c.streams.video[0] if c.streams.video else None
            a = c.streams.audio[0] if c.streams.audio else None
            vs = float(v.start_time * v.time_base) if v is not None and v.start_time is not None else 0.0
            as_ = float(a.start_time * a.time_base) if a is not None and a.start_time is not None else None
            return vs, as_
    except (av.error.FFmpegError, OSError, ValueError):
        return 0.0, None


def _load_job_audio(job: VideoJob, cfg: PrepareConfig, first_video_pts: float) -> tuple[np.ndarray, str, float]:
    """Mono audio at the dataset rate aligned to the first video frame, its source description, and the alignment
    shift applied (s)."""
    if job.audio is not None:
        return load_audio(job.audio, cfg.sample_rate), Path(job.audio).name, 0.0
    try:
        with av.open(job.path) as c:
            has_audio = bool(c.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        has_audio = False
    if not has_audio:
        raise UserError(
            f"no audio stream and no same-named audio file ({Path(job.path).stem}.wav) beside it; "
            "give one with --audio",
            job.path,
        )
    audio = load_audio(job.path, cfg.sample_rate)
    _, audio_start = _stream_start(job.path)
    shift = 0.0 if audio_start is None else audio_start - first_video_pts
    k = int(round(shift * cfg.sample_rate))
    if k > 0:  # audio starts after the first frame: pad its front
        audio = np.concatenate([np.zeros(k, np.float32), audio])
    elif k < 0:
        audio = audio[-k:]
    return audio, "own track", shift


def prepare_video(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    progress: Callable[[int], None] | None = None,
    decode_threads: int = 0,
) -> VideoResult:
    """Prepare one video into clips under `out` (a dataset root). Raises UserError naming the file when it cannot be
    prepared; on any failure the clips it wrote are removed."""
    progress = progress or (lambda n: None)
    t_start = time.perf_counter()
    result = VideoResult(job)
    info = probe(job.path)
    reader = ConstantRateFrames(job.path, cfg.fps, threads=decode_threads)
    if job.audio is not None:  # decode the separate audio first: a bad audio file fails before the long pass
        audio, audio_source, audio_shift = _load_job_audio(job, cfg, 0.0)
    else:
        audio = None
    store = _CropStore(out / WORK_DIR / f"{job.identity}__{job.stem}.u8", cfg.size)
    written: list[Path] = []
    try:
        if audio is not None:
            max_frames = num_video_frames(len(audio), cfg.fps, cfg.sample_rate)
        else:
            max_frames = 1 << 40  # own track: decoded after the frames (its alignment needs the first frame's time)
        track = _analyse(reader, cfg, store, max_frames, progress)
        if audio is None:
            audio, audio_source, audio_shift = _load_job_audio(job, cfg, reader.first_pts)
        crops = store.close()
        n = min(track.n, num_video_frames(len(audio), cfg.fps, cfg.sample_rate))
        if track.n == 0:
            raise UserError("no frames decoded", job.path)
        if not track.face[:n].any():
            raise UserError(f"no face found in any of {track.n} frames", job.path)
        rms = rms_per_frame(audio, n, cfg.fps, cfg.sample_rate)
        offset = estimate_offset(track.mouth[:n], rms, cfg)
        if offset.applied:
            audio = shift_audio(audio, offset.frames, cfg.samples_per_frame)
            rms = rms_per_frame(audio, n, cfg.fps, cfg.sample_rate)
        clips, test_from = _cut_clips(track, rms, n, cfg)
        writer = DatasetWriter(out, image_size=cfg.size, sample_rate=cfg.sample_rate, fps=cfg.fps)
        spf = cfg.samples_per_frame
        for index, (a, b) in enumerate(clips):
            name = f"{job.stem}_{index:03d}"
            clip_dir = out / "clips" / job.identity / name
            written.append(clip_dir)
            boxes = track.boxes[a:b]
            lm_crop = np.stack(
                [
                    face.landmarks_to_crop(track.landmarks[j], face.CropBox(*boxes[i]), cfg.size)
                    for i, j in enumerate(range(a, b))
                ]
            )
            ears = track.ear[a:b]
            eyes = face.eye_openness(ears, np.nanpercentile(track.ear[track.face], cfg.eye_percentile, axis=0))
            clip_audio = audio[int(round(a * spf)) : int(round(b * spf))]
            clip_audio = np.pad(clip_audio, (0, int(round((b - a) * spf)) - len(clip_audio)))
            record = writer.add_clip(
                job.identity,
                name,
                frames=np.asarray(crops[track.row[a:b]]),
                audio=clip_audio,
                landmarks=lm_crop,
                pose=track.pose[a:b],
                eyes=eyes,
                extra={
                    "source": Path(job.path).name,
                    "source_start_frame": int(a),
                    "source_start_seconds": round(a / cfg.fps, 4),
                    "audio_offset_frames": offset.frames if offset.applied else 0,
                    "landmark_scheme": "mediapipe-478",
                },
            )
            with atomic_path(clip_dir / "source_boxes.npy") as tmp:
                np.save(tmp, boxes.astype(np.float32), allow_pickle=False)
            result.records.append(record)
            result.ears[name] = ears.astype(np.float32)
            result.pitch[name] = track.pose[a:b, 1].astype(np.float32)
            if test_from is not None and a >= test_from:
                result.test_clips.append(record.key)
        if not clips:
            raise UserError(
                f"no clip of at least {cfg.min_clip_seconds:g} s with a steady face "
                f"({int(track.face[:n].sum())} of {n} frames had a face)",
                job.path,
            )
        report = _report(
            job,
            cfg,
            info,
            reader,
            track,
            n,
            clips,
            offset,
            audio_source,
            audio_shift,
            len(audio) / cfg.sample_rate,
            test_from,
            time.perf_counter() - t_start,
        )
        sheet = contact_sheet(track, crops, clips, rms, cfg, title=f"{Path(job.path).name} -> {job.identity}")
        reports = out / REPORTS_DIR
        reports.mkdir(parents=True, exist_ok=True)
        with atomic_path(reports / f"{job.identity}__{job.stem}.png") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        write_json(reports / f"{job.identity}__{job.stem}.json", report)
        result.report = report
        del crops
        return result
    except BaseException:
        for d in written:
            shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        store.discard()


def _cut_clips(track: _Track, rms: np.ndarray, n: int, cfg: PrepareConfig) -> tuple[list[tuple[int, int]], int | None]:
    """Clips [start, end) over the first n frames, and the first test frame for split=time (else None)."""
    seg = track.segment[:n].copy()
    test_from = None
    if cfg.split == "time" and cfg.test_fraction > 0:
        test_from = int(math.floor(n * (1.0 - cfg.test_fraction)))
        seg[test_from:] = np.where(seg[test_from:] >= 0, seg[test_from:] + (1 << 30), -1)
    segments = []
    for s, e in runs(seg >= 0):
        bounds = [s] + [i for i in range(s + 1, e) if seg[i] != seg[i - 1]] + [e]
        segments += list(zip(bounds[:-1], bounds[1:]))
    silent = silence_mask(rms, cfg.silence_db)
    pause_len = max(1, round(cfg.pause_seconds * cfg.fps))
    cuts = np.array([(a + b) // 2 for a, b in runs(silent) if b - a >= pause_len], dtype=np.int64)
    quiet = np.convolve(rms, np.ones(5) / 5, mode="same")
    return plan_clips(segments, cuts, quiet, cfg.min_clip_frames, cfg.max_clip_frames), test_from


def _stats(values: np.ndarray) -> dict:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    return {"min": round(float(v.min()), 2), "median": round(float(np.median(v)), 2), "max": round(float(v.max()), 2)}


def _report(
    job: VideoJob,
    cfg: PrepareConfig,
    info,
    reader: ConstantRateFrames,
    track: _Track,
    n: int,
    clips: list[tuple[int, int]],
    offset: OffsetEstimate,
    audio_source: str,
    audio_shift: float,
    audio_seconds: float,
    test_from: int | None,
    seconds: float,
) -> dict:
    kept = np.zeros(n, bool)
    for a, b in clips:
        kept[a:b] = True
    face_mask = track.face[:n]
    warnings = []
    if reader.error:
        warnings.append(reader.error)
    if reader.irregular:
        warnings.append("variable frame rate: resampled by timestamp")
    if abs(track.n - n) > 1:
        which = "video" if track.n > n else "audio"
        warnings.append(f"{which} is longer ({track.n} video frames, audio covers {n}); the excess is dropped")
    sides = track.boxes[:n, 2][face_mask]
    if sides.size and float(np.median(sides)) < cfg.size:
        warnings.append(f"face crop is upscaled (median crop side {np.median(sides):.0f} px < {cfg.size})")
    if track.padded[:n][kept].mean() > 0.2 if kept.any() else False:
        warnings.append(f"{track.padded[:n][kept].mean():.0%} of kept crops reach past the frame border (padded)")
    iod = np.array([face.inter_ocular(track.landmarks[i]) if face_mask[i] else np.nan for i in range(n)])
    return {
        "source": Path(job.path).name,
        "identity": job.identity,
        "audio_source": audio_source,
        "audio_start_shift_seconds": round(audio_shift, 4),
        "video": {
            "width": info.width,
            "height": info.height,
            "fps": round(info.fps, 3),
            "rotation": reader.rotation,
            "source_frames_decoded": reader.source_frames,
            "duration_seconds": round(info.duration, 3),
            "decoded_frame_size": list(track.frame_size),
        },
        "audio_seconds": round(audio_seconds, 3),
        "frames": n,
        "frames_with_face": int(face_mask.sum()),
        "faces_missing": int(n - face_mask.sum()),
        "missing_runs": len(runs(~face_mask)),
        "frames_kept": int(kept.sum()),
        "scene_cuts": track.cuts,
        "face_jumps": track.jumps,
        "clips": [
            {
                "name": f"{job.stem}_{i:03d}",
                "start": a,
                "frames": b - a,
                "split": "test" if test_from is not None and a >= test_from else None,
            }
            for i, (a, b) in enumerate(clips)
        ],
        "offset": {
            "frames": offset.frames,
            "ms": round(offset.frames * 1000 / cfg.fps, 1),
            "r": round(offset.r, 3),
            "r_zero": round(offset.r_zero, 3),
            "null95": round(offset.null95, 3),
            "clear": offset.clear,
            "applied": offset.applied,
            "reason": offset.reason,
        },
        "face_size_px": {"crop_side": _stats(sides), "inter_ocular": _stats(iod)},
        "pose_degrees": {k: _stats(track.pose[:n][kept, i]) for i, k in enumerate(("yaw", "pitch", "roll"))},
        "eye_aspect_ratio": {k: _stats(track.ear[:n][kept, i]) for i, k in enumerate(("left", "right"))},
        "padded_frames": int(track.padded[:n][kept].sum()),
        "warnings": warnings,
        "seconds": round(seconds, 2),
        "frames_per_second": round(track.n / max(seconds, 1e-6), 1),
        "config": {k: v for k, v in asdict(cfg).items()},
    }


# --------------------------------------------------------------------------------------------------------------------
# contact sheet


def draw_landmarks(tile: np.ndarray, points01: np.ndarray) -> None:
    """Draw mediapipe-478 landmarks given in [0, 1] of the tile (in place): every point as a dot, the face oval,
    brows and nose as green lines, eyes red (subject's right) / blue (left), lips magenta, irises yellow."""
    from mediapipe.python.solutions import face_mesh_connections as conn  # mediapipe is loaded by the tracker

    s = tile.shape[0]
    xy = points01[:, :2] * s
    for x, y in xy:
        if 0 <= x < s and 0 <= y < s:
            tile[int(y), int(x)] = (120, 255, 120)
    groups = [
        (
            conn.FACEMESH_FACE_OVAL | conn.FACEMESH_LEFT_EYEBROW | conn.FACEMESH_RIGHT_EYEBROW | conn.FACEMESH_NOSE,
            (0, 220, 0),
        ),
        (conn.FACEMESH_RIGHT_EYE, (255, 40, 40)),
        (conn.FACEMESH_LEFT_EYE, (40, 120, 255)),
        (conn.FACEMESH_LIPS, (255, 0, 200)),
        (conn.FACEMESH_IRISES, (255, 230, 0)),
    ]
    for edges, colour in groups:
        for a, b in edges:
            if max(a, b) < len(xy):
                cv2.line(
                    tile,
                    (int(round(xy[a, 0] * 4)), int(round(xy[a, 1] * 4))),
                    (int(round(xy[b, 0] * 4)), int(round(xy[b, 1] * 4))),
                    colour,
                    1,
                    cv2.LINE_AA,
                    shift=2,
                )


def contact_sheet(
    track: _Track,
    crops: np.ndarray,
    clips: list[tuple[int, int]],
    rms: np.ndarray,
    cfg: PrepareConfig,
    title: str = "",
    tile: int = 192,
) -> np.ndarray:
    """Tiles of kept frames with landmarks drawn and pose/eyes written, over a strip chart of the whole video
    (yaw/pitch/roll, eye aspect ratios, mouth opening, audio RMS; kept frames shaded)."""
    kept = [j for a, b in clips for j in range(a, b)]
    count = min(cfg.contact_tiles, len(kept))
    cols = 4 if count > 4 else max(count, 1)
    nrows = max(1, math.ceil(count / cols))
    width = cols * tile
    chart_h = 150
    sheet = np.full((28 + nrows * tile + chart_h, width, 3), 255, np.uint8)
    cv2.putText(sheet, title[:90], (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    picks = [kept[int(i)] for i in np.linspace(0, len(kept) - 1, count)] if count else []
    clip_of = {j: ci for ci, (a, b) in enumerate(clips) for j in range(a, b)}
    for t, j in enumerate(picks):
        img = cv2.resize(np.asarray(crops[track.row[j]]), (tile, tile), interpolation=cv2.INTER_AREA)
        pts = face.landmarks_to_crop(track.landmarks[j], face.CropBox(*track.boxes[j]), cfg.size)
        draw_landmarks(img, pts)
        yaw, pitch, roll = track.pose[j]
        lines = [
            f"clip {clip_of[j]} f{j}",
            f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}",
            f"EAR {track.ear[j, 0]:.2f}/{track.ear[j, 1]:.2f}",
        ]
        for li, text in enumerate(lines):
            cv2.putText(img, text, (4, 14 + 14 * li), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(img, text, (4, 14 + 14 * li), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(t, cols)
        sheet[28 + r * tile : 28 + (r + 1) * tile, c * tile : (c + 1) * tile] = img
    _strip_chart(sheet[28 + nrows * tile :], track, clips, rms)
    return sheet


def _strip_chart(area: np.ndarray, track: _Track, clips: list[tuple[int, int]], rms: np.ndarray) -> None:
    h, w = area.shape[:2]
    n = len(rms)
    if n < 2:
        return
    xs = np.linspace(4, w - 4, n)
    for a, b in clips:
        cv2.rectangle(area, (int(xs[a]), 0), (int(xs[min(b, n) - 1]), h - 1), (225, 240, 225), -1)
        cv2.line(area, (int(xs[a]), 0), (int(xs[a]), h - 1), (120, 180, 120), 1)
    for j in np.flatnonzero(~track.face[:n]):
        cv2.line(area, (int(xs[j]), 0), (int(xs[j]), h - 1), (255, 200, 200), 1)

    def plot(values: np.ndarray, lo: float, hi: float, top: int, height: int, colour: tuple) -> None:
        v = np.clip((np.asarray(values[:n], np.float64) - lo) / (hi - lo), 0, 1)
        ys = top + height - v * height
        ok = np.isfinite(ys)
        for part in runs(ok):
            pts = np.stack([xs[part[0] : part[1]], ys[part[0] : part[1]]], 1).astype(np.int32)
            cv2.polylines(area, [pts], False, colour, 1, cv2.LINE_AA)

    plot(track.pose[:, 0], -30, 30, 2, 44, (200, 0, 0))
    plot(track.pose[:, 1], -30, 30, 2, 44, (0, 140, 0))
    plot(track.pose[:, 2], -30, 30, 2, 44, (0, 0, 200))
    plot(track.ear[:, 0], 0, 0.45, 50, 44, (150, 0, 150))
    plot(track.ear[:, 1], 0, 0.45, 50, 44, (0, 150, 150))
    plot(track.mouth, 0, 0.6, 98, 48, (0, 0, 0))
    plot(rms / max(float(rms.max()), 1e-9), 0, 1, 98, 48, (230, 120, 0))
    for y, label in ((12, "yaw/pitch/roll"), (60, "EAR L/R"), (108, "mouth, audio")):
        cv2.putText(area, label, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)


# --------------------------------------------------------------------------------------------------------------------
# batch


def _run_one(
    job: VideoJob, out: Path, cfg: PrepareConfig, progress: Callable[[int], None] | None, decode_threads: int = 0
) -> VideoResult:
    """Run one job, turning any failure into a one-line error naming the file (the batch goes on)."""
    try:
        return prepare_video(job, out, cfg, progress, decode_threads)
    except UserError as exc:
        return VideoResult(job, error=str(exc))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 (an odd file must not stop the batch; the traceback goes to debug log)
        log.debug("%s", traceback.format_exc())
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return VideoResult(job, error=f"{job.path}: failed ({type(exc).__name__}{': ' + detail if detail else ''})")


def _pool_worker(job: VideoJob, out: str, cfg: PrepareConfig, queue) -> VideoResult:  # noqa: ANN001
    # K workers share the cores: one decoding thread each (FFmpeg's default is one per core)
    return _run_one(job, Path(out), cfg, queue.put, decode_threads=1)


def _init_pool_worker() -> None:
    # K workers share the cores: no nested thread pools (OpenCV, FFmpeg frame threads)
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cv2.setNumThreads(1)


def run_jobs(
    jobs: list[VideoJob],
    out: Path,
    cfg: PrepareConfig,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[VideoResult]:
    """Prepare every job, spread over `workers` processes; results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        return [_run_one(job, out, cfg, progress) for job in jobs]
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # mediapipe and FFmpeg hold threads: never fork them
    manager = ctx.Manager()
    q = manager.Queue()
    try:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_pool_worker
        ) as pool:
            futures = [pool.submit(_pool_worker, job, str(out), cfg, q) for job in jobs]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2)
                while True:
                    try:
                        count = q.get_nowait()
                    except queue_mod.Empty:
                        break
                    if progress is not None:
                        progress(count)
            return [f.result() for f in futures]
    finally:
        manager.shutdown()


def finalize_dataset(out: Path, results: list[VideoResult], cfg: PrepareConfig) -> dict:
    """Per-identity eye normalisation (and optional pitch reference), splits and dataset.json; returns a summary."""
    ok = [r for r in results if r.error is None]
    writer = DatasetWriter(
        out, image_size=cfg.size, sample_rate=cfg.sample_rate, fps=cfg.fps, source=_source_text(cfg)
    )
    by_identity: dict[str, list[VideoResult]] = {}
    for r in ok:
        by_identity.setdefault(r.job.identity, []).append(r)
    identity_facts = {}
    for identity, group in sorted(by_identity.items()):
        ears = np.concatenate([e for r in group for e in r.ears.values()])
        open_ref = np.nanpercentile(ears, cfg.eye_percentile, axis=0)
        pitch_ref = float(np.nanmedian(np.concatenate([p for r in group for p in r.pitch.values()])))
        identity_facts[identity] = {
            "eye_open_ear": [round(float(v), 4) for v in open_ref],
            "median_pitch": round(pitch_ref, 2),
            "videos": [r.job.stem for r in group],
        }
        for r in group:
            for name, ear in r.ears.items():
                clip_dir = out / "clips" / identity / name
                with atomic_path(clip_dir / "eyes.npy") as tmp:
                    np.save(tmp, face.eye_openness(ear, open_ref).astype(np.float32), allow_pickle=False)
                if cfg.pose_reference == "identity-median":
                    pose = np.load(clip_dir / "pose.npy")
                    pose[:, 1] -= pitch_ref
                    with atomic_path(clip_dir / "pose.npy") as tmp:
                        np.save(tmp, pose.astype(np.float32), allow_pickle=False)
            for record in r.records:
                writer.register(record)
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    if cfg.split == "time":
        test = sorted(k for r in ok for k in r.test_clips)
        train = sorted(c.key for c in writer.meta.clips if c.key not in set(test))
        meta = writer.finish(splits={"train": train, "test": test}, seed=cfg.seed)
    else:
        meta = writer.finish(test_fraction=cfg.test_fraction, seed=cfg.seed)
    summary = {
        "videos": [
            {
                "source": Path(r.job.path).name,
                "identity": r.job.identity,
                "error": None if r.error is None else r.error.replace(r.job.path, Path(r.job.path).name),
                **(
                    {
                        k: r.report.get(k)
                        for k in ("frames", "frames_kept", "faces_missing", "offset", "face_size_px", "warnings")
                    }
                    if r.error is None
                    else {}
                ),
                "clips": len(r.records),
            }
            for r in results
        ],
        "identities": identity_facts,
        "splits": {k: len(v) for k, v in meta.splits.items()},
        "split_mode": cfg.split,
        "test_fraction": cfg.test_fraction,
        "seed": cfg.seed,
    }
    write_json(out / REPORTS_DIR / "summary.json", summary)
    return summary


def _source_text(cfg: PrepareConfig) -> str:
    split = (
        f"split by time: last {cfg.test_fraction:.0%} of each video is test"
        if cfg.split == "time"
        else f"split by clip, seeded ({cfg.test_fraction:.0%} test)"
    )
    return f"apb2face prepare: real videos, mediapipe face mesh, {split}"


def summary_table(results: list[VideoResult]) -> str:
    """The end-of-run table: one row per video."""
    head = ("video", "identity", "frames", "kept", "clips", "missing", "offset", "face px", "status")
    rows = []
    for r in results:
        name = Path(r.job.path).name
        if r.error is not None:
            rows.append((name, r.job.identity, "-", "-", "-", "-", "-", "-", "FAILED"))
            continue
        rep = r.report
        off = rep["offset"]
        offset = f"{off['frames']:+d}{'*' if off['applied'] else ''}" if off["clear"] else "?"
        side = rep["face_size_px"]["crop_side"]
        rows.append(
            (
                name,
                r.job.identity,
                str(rep["frames"]),
                str(rep["frames_kept"]),
                str(len(r.records)),
                str(rep["faces_missing"]),
                offset,
                f"{side.get('min', 0):.0f}-{side.get('max', 0):.0f}",
                "ok" + (f" ({len(rep['warnings'])} warnings)" if rep["warnings"] else ""),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths[:-1])) + "  {}"
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    lines.append(
        "offset: audio lag in frames (+ = audio late); * = corrected; ? = not clear, left as is. "
        "face px: crop side in source pixels"
    )
    return "\n".join(lines)
