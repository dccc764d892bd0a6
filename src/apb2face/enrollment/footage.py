"""The new people's footage: prepared with `prepare` (the last part of every video held out), then checked.

A person is refused, with one line that says why, when their footage cannot teach the model: no usable face,
less than `min_train_seconds` of face footage for training, or two different people in it (a face recogniser reads
the sampled frames as two groups: an interview whose speakers take turns).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apb2face.data.identity import SAME_PERSON_DISTANCE, FaceEmbedder
from apb2face.data.prepare import PrepareConfig, VideoJob, VideoResult, finalize_dataset, run_jobs
from apb2face.enrollment.config import EnrollConfig
from apb2face.errors import UserError
from apb2face.inference.listen import FuserListener

log = logging.getLogger(__name__)

FRAMES_CHECKED_PER_PERSON = 16  # frames embedded per person for the two-people check
SECOND_PERSON_SHARE = 0.25  # a second group at least this large is a second person, not a bad frame


@dataclass
class Footage:
    """The prepared dataset of the new people and what happened to each video."""

    root: Path
    identities: list[str]
    failures: list[str] = field(default_factory=list)  # one line per refused video or person
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # identity -> {"train": s, "test": s}
    videos: dict[str, list[str]] = field(default_factory=dict)  # identity -> source files


def prepare_footage(
    jobs: list[VideoJob],
    out: Path,
    size: int,
    cfg: EnrollConfig,
    progress: Callable[[int], None] | None = None,
    listen_with: Path | None = None,
) -> Footage:
    """Prepare every job into `out` (a new folder), drop the people whose footage fails a check, write the dataset.
    A video with several people is split by who speaks when, the speaker being the face whose mouth does what the
    fuser of `listen_with` (None: the demo checkpoint) draws for the audio. UserError when nobody is left."""
    prepare_cfg = PrepareConfig(size=size, split="time", test_fraction=cfg.test_fraction)
    listener = FuserListener(listen_with) if any(job.scene for job in jobs) else None
    results = run_jobs(jobs, out, prepare_cfg, progress=progress, listener=listener)
    failures = [f"{r.job.path}: {r.error}" for r in results if r.error is not None]
    ok = [r for r in results if r.error is None]
    people = sorted({r.job.identity for r in ok})
    seconds = {name: _seconds([r for r in ok if r.job.identity == name], prepare_cfg.fps) for name in people}
    embedder = FaceEmbedder()
    for name in people:
        group = [r for r in ok if r.job.identity == name]
        problem = _too_short(seconds[name], cfg) or check_one_person(sample_frames(out, group), embedder)
        if problem:
            failures += [f"{r.job.path}: {problem}" for r in ok if r.job.identity == name]
            ok = [r for r in ok if r.job.identity != name]
    if not ok:
        raise UserError("no video could be enrolled: " + "; ".join(failures))
    finalize_dataset(out, ok, prepare_cfg)
    _remove_dropped(out, {r.job.identity for r in results} - {r.job.identity for r in ok})
    footage = Footage(
        root=out,
        identities=sorted({r.job.identity for r in ok}),
        failures=failures,
        seconds={name: seconds[name] for name in {r.job.identity for r in ok}},
        videos={name: [r.job.path for r in ok if r.job.identity == name] for name in {r.job.identity for r in ok}},
    )
    return footage


PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def is_photo(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PHOTO_EXTENSIONS


def photo_footage(job: VideoJob, out: Path, size: int, cfg: EnrollConfig) -> Footage:
    """Footage rendered from one portrait (data/synth/photo.py): the face found with the mesh, or with the
    full-range detector and the mesh on its crop; UserError naming the photo when there is no face."""
    from tqdm import tqdm

    from apb2face.data import face
    from apb2face.data.synth.photo import photo_dataset
    from apb2face.inference.faces import detect_photo_landmarks, read_image

    image = read_image(job.path)
    with face.FaceMesh(video=False) as mesh:
        points = detect_photo_landmarks(mesh, image)
    if points is None:
        raise UserError("no face found in the photo", job.path)
    with tqdm(total=cfg.photo_clips, desc="render the photo", unit="clip", disable=None) as bar:
        seconds = photo_dataset(
            image, points, job.identity, out, size, cfg.photo_clips, cfg.test_fraction, progress=bar.update
        )
    name = job.identity
    return Footage(root=out, identities=[name], seconds={name: seconds}, videos={name: [job.path]})


def _seconds(results: list[VideoResult], fps: float) -> dict[str, float]:
    test = {key for r in results for key in r.test_clips}
    frames = {"train": 0, "test": 0}
    for r in results:
        for record in r.records:
            frames["test" if record.key in test else "train"] += record.num_frames
    return {k: v / fps for k, v in frames.items()}


def _too_short(seconds: dict[str, float], cfg: EnrollConfig) -> str | None:
    if seconds["train"] < cfg.min_train_seconds:
        have = seconds["train"] + seconds["test"]
        need = cfg.min_train_seconds / (1 - cfg.test_fraction)
        return (
            f"too short to learn from: {have:.1f} s of usable face footage ({seconds['train']:.1f} s for training "
            f"after holding out the last {cfg.test_fraction:.0%}); need at least {need:.0f} s of a clearly visible "
            f"talking face, {cfg.recommended_seconds:.0f} s or more for a good result"
        )
    if seconds["test"] <= 0:
        return "no held-out footage was left to measure the result on (the last part of the video has no face)"
    return None


def _remove_dropped(root: Path, names: set[str]) -> None:
    for name in names:
        shutil.rmtree(root / "clips" / name, ignore_errors=True)


def check_one_person(frames: list[np.ndarray], embedder: FaceEmbedder) -> str | None:
    """What is wrong when the sampled frames of one person's footage show two different people (else None).

    The medoid frame (least total distance to the others) stands for the person; when at least
    SECOND_PERSON_SHARE of the frames are farther from it than the recogniser's same-person distance, and those
    frames agree with each other, the footage holds a second person."""
    vectors = [v for v in (embedder.embed(f) for f in frames) if v is not None]
    if len(vectors) < 4:
        return None
    emb = np.stack(vectors)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    medoid = int(np.argmin(dist.sum(1)))
    far = dist[medoid] > SAME_PERSON_DISTANCE
    if far.mean() < SECOND_PERSON_SHARE:
        return None
    others = dist[np.ix_(far, far)]
    if np.median(others[np.triu_indices(len(others), 1)]) > SAME_PERSON_DISTANCE:
        return None  # the far frames do not agree with each other either: bad frames, not a second person
    return (
        f"shows two different people ({far.mean():.0%} of the sampled frames are another face, "
        f"{float(np.median(dist[medoid][far])):.2f} apart; same person <= {SAME_PERSON_DISTANCE}): enrol each person "
        "from footage of them alone, or cut the video per speaker"
    )


def sample_frames(root: Path, results: list[VideoResult], count: int = FRAMES_CHECKED_PER_PERSON) -> list[np.ndarray]:
    """`count` crops spread evenly over the prepared clips of `results` (train and test)."""
    index = [(record.key, i) for r in results for record in r.records for i in range(record.num_frames)]
    if not index:
        return []
    picks = np.linspace(0, len(index) - 1, min(count, len(index))).round().astype(int)
    arrays: dict[str, np.ndarray] = {}
    frames = []
    for p in picks:
        key, i = index[p]
        if key not in arrays:
            arrays[key] = np.load(root / "clips" / key / "frames.npy", mmap_mode="r")
        frames.append(np.asarray(arrays[key][i]))
    return frames


def write_avatar_clip(video: str | Path, path: Path, seconds: float) -> None:
    """The first `seconds` of the person's video at its own size and frame rate (no audio): the loop
    `generate --full-frame` renders new speech over (inference/avatar.py)."""
    from apb2face.data.video import Mp4Writer, iter_frames, probe

    fps = probe(video).fps or 25.0
    with Mp4Writer(path, fps=fps, crf=16) as writer:
        for k, (_, frame) in enumerate(iter_frames(video)):
            if k >= round(seconds * fps):
                break
            writer.write_frame(frame)
