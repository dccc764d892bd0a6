"""Import the official AnnVI dataset layout (APB2Face/APB2FaceV2) into dataset format v1 (`apb2face import-annvi`).

Input (docs/upstream facts: the layout the official scripts read and write)::

    ROOT/label/<idt>.txt             usable segments: "start end" per line, video frame indices, inclusive
    ROOT/landmark/<idt>.txt          per frame: "<n>.jpg W-H" + 106 "x-y" points (source pixels) + 3 pose + 2 blink
    ROOT/audio/<idt>.m4a             the video's audio (any format FFmpeg reads; also .wav/.mp3/...)
    ROOT/video/<idt>.mp4             the source video (frame rate; frames when no image folder exists)
    ROOT/feature/<idt>/256_image_crop/<n>.jpg   256x256 face crops made by the official script (used as they are)
    ROOT/feature/<idt>/256_landmark_crop.txt    the same lines with points in crop pixels (size field 256-256)
    ROOT/feature/<idt>/image/<n>.jpg            full frames dumped by the official script

Frames come from the 256 crops when present, else from full frames (image/ or the video) cut with the official crop
rule: centre of the landmark bounding box, side = 1.4 x its longer side, resized (borders padded by edge replication
where the official script silently wrapped). Landmarks are stored in [0, 1] of the crop, scheme "face++-106".
Each label segment becomes a clip (split where frames or annotations are missing); train/test is a seeded split by
clip. Pose: the three stored numbers are named (pitch, roll, yaw) by the official demo and are small scaled values,
read as radians by default (`pose_scale`), reordered to our (yaw, pitch, roll) in degrees; their signs are kept as
stored (undocumented upstream). Eyes: the two blink numbers (left, right) are divided by the identity's 90th percentile
and clipped to [0, 1] (1 open), like prepare's eye aspect ratios but without its mediapipe closed-eye offset.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from apb2face.data import face
from apb2face.data.audio import SAMPLE_RATE, load_audio
from apb2face.data.format import DatasetWriter
from apb2face.errors import UserError

log = logging.getLogger(__name__)

LANDMARK_SCHEME = "face++-106"
NUM_POINTS = 106
CROP_FACTOR = 1.4  # official rule: half-side = 1.4 x half the longer side of the landmark bounding box
SKIPPED_ENTRIES = {"jaime", "256_feature"}  # leftovers on the authors' disk that the official loaders skip
POSE_NAMES = ("yaw", "pitch", "roll")
AUDIO_EXTENSIONS = (".m4a", ".wav", ".mp3", ".aac", ".flac", ".ogg", ".mp4")
_POINT = re.compile(r"^(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)-(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$")


@dataclass
class AnnviConfig:
    size: int = 256
    sample_rate: int = SAMPLE_RATE
    fps: float | None = None  # None: read from video/<idt>.mp4, else 25 (what every official writer assumes)
    pose_order: tuple[str, str, str] = ("pitch", "roll", "yaw")  # meaning of the 3 stored pose numbers, in order
    pose_scale: float | None = None  # degrees per stored unit; None = radians if every |value| <= pi/2, else degrees
    eye_percentile: float = 90.0
    min_frames: int = 10  # shorter runs of usable frames are dropped
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if sorted(self.pose_order) != sorted(POSE_NAMES):
            raise ValueError(f"pose_order must name yaw, pitch and roll once each, got {self.pose_order}")
        if not 16 <= self.size <= 2048:
            raise ValueError(f"size must be 16..2048, got {self.size}")


@dataclass
class Annotation:
    """One line of a landmark file."""

    frame: int
    image_size: tuple[int, int]  # (W, H) as stored
    points: np.ndarray  # (106, 2) pixels
    pose: np.ndarray  # (3,) as stored
    blink: np.ndarray  # (2,) as stored


def parse_landmark_file(path: str | Path) -> dict[int, Annotation]:
    """Frame index -> annotation. Points are "x-y" pairs; negative coordinates ("-3.5-12", "4--1") are accepted."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read landmark file ({exc})", path) from None
    out: dict[int, Annotation] = {}
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2 + NUM_POINTS + 3 + 2:
            raise UserError(
                f"line {number}: expected {2 + NUM_POINTS + 5} fields (name, W-H, {NUM_POINTS} x-y "
                f"points, 3 pose, 2 blink), got {len(tokens)}",
                path,
            )
        try:
            frame = int(Path(tokens[0]).stem)
            w, h = (int(float(v)) for v in tokens[1].split("-"))
            pts = np.empty((NUM_POINTS, 2), np.float64)
            for i, tok in enumerate(tokens[2 : 2 + NUM_POINTS]):
                m = _POINT.match(tok)
                if m is None:
                    raise ValueError(f"bad point {tok!r}")
                pts[i] = float(m.group(1)), float(m.group(2))
            pose = np.array([float(v) for v in tokens[2 + NUM_POINTS : 5 + NUM_POINTS]])
            blink = np.array([float(v) for v in tokens[5 + NUM_POINTS :]])
        except ValueError as exc:
            raise UserError(f"line {number}: {exc}", path) from None
        if not (np.isfinite(pts).all() and np.isfinite(pose).all() and np.isfinite(blink).all()):
            raise UserError(f"line {number}: non-finite value", path)
        out[frame] = Annotation(frame, (w, h), pts, pose, blink)
    return out


def parse_labels(path: str | Path) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame ranges."""
    path = Path(path)
    ranges = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read label file ({exc})", path) from None
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            a, b = (int(float(v)) for v in parts)
        except ValueError:
            raise UserError(f"line {number}: expected 'start end', got {line.strip()!r}", path) from None
        if b < a:
            raise UserError(f"line {number}: end {b} before start {a}", path)
        ranges.append((a, b))
    return ranges


def official_crop_box(points: np.ndarray) -> face.CropBox:
    """The official crop: centre of the landmark bounding box, side = 1.4 x the longer side of the box."""
    lo, hi = points.min(0), points.max(0)
    c = (lo + hi) / 2
    return face.CropBox(float(c[0]), float(c[1]), float(CROP_FACTOR * (hi - lo).max()))


def find_identities(root: Path) -> list[str]:
    names = set()
    if (root / "landmark").is_dir():
        names |= {p.stem for p in (root / "landmark").glob("*.txt")}
    if (root / "feature").is_dir():
        names |= {
            p.name
            for p in (root / "feature").iterdir()
            if p.is_dir()
            and p.name not in SKIPPED_ENTRIES
            and ((p / "256_landmark_crop.txt").is_file() or (root / "landmark" / f"{p.name}.txt").is_file())
        }
    return sorted(names)


def _audio_file(root: Path, idt: str) -> Path:
    for ext in AUDIO_EXTENSIONS:
        p = root / "audio" / f"{idt}{ext}"
        if p.is_file():
            return p
    video = root / "video" / f"{idt}.mp4"
    if video.is_file():
        return video
    raise UserError(f"no audio for identity {idt} (looked for audio/{idt}.m4a/.wav/... and video/{idt}.mp4)", root)


def _pose_scale(cfg: AnnviConfig, values: np.ndarray) -> tuple[float, str]:
    if cfg.pose_scale is not None:
        return cfg.pose_scale, f"x{cfg.pose_scale:g} degrees per stored unit"
    if values.size == 0 or np.abs(values).max() <= math.pi / 2:
        return 180.0 / math.pi, "radians (all |values| <= pi/2)"
    return 1.0, "degrees (some |value| > pi/2)"


class _FrameSource:
    """Face crops of one identity, by original frame index, from the official crops, full frames or the video."""

    def __init__(self, root: Path, idt: str, size: int) -> None:
        self.size = size
        self.crop_dir = root / "feature" / idt / "256_image_crop"
        self.image_dir = root / "feature" / idt / "image"
        self.video = root / "video" / f"{idt}.mp4"
        if self.crop_dir.is_dir() and any(self.crop_dir.glob("*.jpg")):
            self.kind = "256_image_crop"
        elif self.image_dir.is_dir() and any(self.image_dir.glob("*.jpg")):
            self.kind = "image"
        elif self.video.is_file():
            self.kind = "video"
        else:
            raise UserError(
                f"no frames for identity {idt} (no feature/{idt}/256_image_crop/, feature/{idt}/image/ "
                f"or video/{idt}.mp4)",
                root,
            )

    def available(self, frames: set[int]) -> set[int]:
        if self.kind == "256_image_crop":
            return {n for n in frames if (self.crop_dir / f"{n}.jpg").is_file()}
        if self.kind == "image":
            return {n for n in frames if (self.image_dir / f"{n}.jpg").is_file()}
        return set(frames)  # the video is read once, in order; frames past its end shorten the last clips

    def crops(self, runs: list[list[int]], ann: dict[int, Annotation]):  # noqa: ANN201 (generator)
        """(run, crops) per run, runs in ascending frame order; a run the video ends inside comes back shorter."""
        if self.kind != "video":
            for run in runs:
                yield run, np.stack([self._crop_file(n, ann[n]) for n in run])
            return
        from apb2face.data.video import iter_frames

        # one sequential pass (as the official split_video reads frames by index), holding one run's crops at a time
        frames = enumerate(f for _, f in iter_frames(self.video))
        for run in runs:
            got = []
            for i, image in frames:
                if i >= run[0]:
                    got.append(face.crop_image(image, official_crop_box(ann[i].points), self.size))
                    if i == run[-1]:
                        break
            yield run[: len(got)], np.stack(got) if got else np.zeros((0, self.size, self.size, 3), np.uint8)

    def _crop_file(self, n: int, ann: Annotation) -> np.ndarray:
        if self.kind == "256_image_crop":
            img = _read_rgb(self.crop_dir / f"{n}.jpg")
            if img.shape[:2] != (self.size, self.size):
                img = cv2.resize(
                    img,
                    (self.size, self.size),
                    interpolation=cv2.INTER_AREA if img.shape[0] > self.size else cv2.INTER_LINEAR,
                )
            return img
        return face.crop_image(_read_rgb(self.image_dir / f"{n}.jpg"), official_crop_box(ann.points), self.size)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError("cannot read image (not an image, or corrupt)", path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _contiguous(frames: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in sorted(frames):
        if out and n == out[-1][-1] + 1:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def import_annvi(
    root: str | Path, out: str | Path, cfg: AnnviConfig | None = None, progress: Callable[[int], None] | None = None
) -> dict:
    """Convert an AnnVI tree into a dataset at `out` (which must be new or empty); returns a summary."""
    cfg = cfg or AnnviConfig()
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise UserError("not a directory", root)
    identities = find_identities(root)
    if not identities:
        raise UserError(
            "no AnnVI identities found (expected landmark/<idt>.txt or feature/<idt>/256_landmark_crop.txt)", root
        )
    plans = []
    fps_values = set()
    for idt in identities:
        crop_txt = root / "feature" / idt / "256_landmark_crop.txt"
        src_txt = root / "landmark" / f"{idt}.txt"
        frames = _FrameSource(root, idt, cfg.size)
        # crops made by the official script go with its crop-pixel landmark file; our own crops with the source one
        use_crop_txt = frames.kind == "256_image_crop" and crop_txt.is_file()
        ann = parse_landmark_file(crop_txt if use_crop_txt else src_txt)
        if not ann:
            raise UserError("landmark file has no lines", crop_txt if use_crop_txt else src_txt)
        label = root / "label" / f"{idt}.txt"
        ranges = parse_labels(label) if label.is_file() else [(min(ann), max(ann))]
        fps = cfg.fps
        if fps is None:
            fps = 25.0
            if frames.video.is_file():
                from apb2face.data.video import probe

                fps = round(probe(frames.video).fps, 3)
        fps_values.add(fps)
        plans.append((idt, frames, ann, use_crop_txt, ranges, fps))
    if len(fps_values) != 1:
        raise UserError(f"identities have different frame rates {sorted(fps_values)}; give --fps", root)
    fps = fps_values.pop()
    all_pose = np.array([a.pose for _, _, ann, _, _, _ in plans for a in ann.values()])
    scale, scale_text = _pose_scale(cfg, all_pose)
    order = [cfg.pose_order.index(name) for name in POSE_NAMES]  # stored index of yaw, pitch, roll
    writer = DatasetWriter(
        out,
        image_size=cfg.size,
        sample_rate=cfg.sample_rate,
        fps=fps,
        source=f"AnnVI import (official layout); pose stored as {'/'.join(cfg.pose_order)} in "
        f"{scale_text}; eyes = blink / identity p{cfg.eye_percentile:g}",
        landmark_scheme=LANDMARK_SCHEME,
    )
    spf = cfg.sample_rate / fps
    summary = {"identities": {}, "pose_units": scale_text, "pose_order": list(cfg.pose_order), "fps": fps}
    for idt, frames, ann, use_crop_txt, ranges, _ in plans:
        audio_path = _audio_file(root, idt)
        audio = load_audio(audio_path, cfg.sample_rate)
        blink = np.array([a.blink for a in ann.values()])
        open_ref = np.maximum(np.percentile(blink, cfg.eye_percentile, axis=0), 1e-6)
        usable = frames.available(set(ann))
        runs = sorted(run for a, b in ranges for run in _contiguous([n for n in range(a, b + 1) if n in usable]))
        dropped = sum(len(r) for r in runs if len(r) < cfg.min_frames)
        clips = 0
        for run, crops in frames.crops([r for r in runs if len(r) >= cfg.min_frames], ann):
            if len(run) < cfg.min_frames:
                dropped += len(run)
                continue
            name = f"{idt}_{run[0]:06d}"
            items = [ann[n] for n in run]
            if use_crop_txt:
                lm = np.stack([it.points / np.array(it.image_size, np.float64) for it in items])
            else:
                lm = np.stack(
                    [face.landmarks_to_crop(it.points, official_crop_box(it.points), cfg.size) for it in items]
                )
            pose = np.stack([it.pose[order] * scale for it in items])
            eyes = face.eye_openness(np.stack([it.blink for it in items]), open_ref, closed_fraction=0.0)
            lo, hi = int(round(run[0] * spf)), int(round((run[-1] + 1) * spf))
            clip_audio = np.pad(audio[lo:hi], (0, max(0, hi - lo - len(audio[lo:hi]))))
            writer.add_clip(
                idt,
                name,
                frames=crops,
                audio=clip_audio,
                landmarks=lm.astype(np.float32),
                pose=pose,
                eyes=eyes,
                extra={
                    "source": f"AnnVI {idt} frames {run[0]}-{run[-1]}",
                    "source_start_frame": run[0],
                    "landmark_scheme": LANDMARK_SCHEME,
                },
            )
            clips += 1
            if progress is not None:
                progress(len(run))
        summary["identities"][idt] = {
            "clips": clips,
            "frames_dropped": dropped,
            "frames_from": frames.kind,
            "audio": audio_path.name,
        }
        if clips == 0:
            raise UserError(
                f"identity {idt}: no run of at least {cfg.min_frames} frames with image, annotation and label", root
            )
    meta = writer.finish(test_fraction=cfg.test_fraction, seed=cfg.seed)
    summary["splits"] = {k: len(v) for k, v in meta.splits.items()}
    return summary
