"""Cross-identity reenactment (`apb2face grid`, the paper's Figure 2).

The matrix: rows are reference identities, columns driving identities. Cell (r, c) is identity r's bundled
reference driven by a held-out clip of identity c (its audio, pose and eyes). The diagonal is self-reenactment.
Outputs: DIR/grid.png (one moment of every cell, picked where the driving speech is loudest, with the driving
frames and the references as headers), DIR/grid.mp4 (the whole matrix in motion; silent, because every column
speaks a different clip), and DIR/columns/<driver>.mp4 (one column at a time: every reference driven by that
clip, beside the driving frames, WITH that clip's audio).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.data import audio as A
from apb2face.data.format import Clip, ClipRecord, Dataset
from apb2face.errors import UserError
from apb2face.evaluation.figures import even_sides, output_file, resize_frames, tile, write_png
from apb2face.evaluation.reenact import reenact_clip
from apb2face.io import write_json

log = logging.getLogger(__name__)


@dataclass
class GridConfig:
    split: str = "test"
    max_frames: int = 125  # frames of each driving clip (5 s at 25 fps)
    batch_size: int = 16
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.batch_size < 1:
            raise ValueError(f"max_frames and batch_size must be at least 1, got {self.max_frames}, {self.batch_size}")


def _driving_clips(dataset: Dataset, split: str, identities: list[str]) -> dict[str, ClipRecord]:
    """The first clip of each driving identity in `split` (falling back to any clip of it)."""
    out = {}
    for name in identities:
        records = dataset.clips(split, identity=name) if split in dataset.meta.splits else []
        records = records or dataset.clips(None, identity=name)
        if not records:
            raise UserError(f"identity {name!r} has no clips", dataset.root)
        out[name] = records[0]
    return out


@dataclass
class CrossMatrix:
    """Every reference driven by every driving clip: cells[(reference, driver)] (n, S, S, 3), beside the driving
    frames (resized to the model's size) and the reference crops."""

    references: list[str]
    drivers: list[str]
    clips: dict[str, Clip]
    lengths: dict[str, int]  # frames per driving clip
    cells: dict[tuple[str, str], np.ndarray]
    truth: dict[str, np.ndarray]
    reference_crops: dict[str, np.ndarray]
    fps: float

    def frame_grid(self, t: int) -> list[list[np.ndarray | None]]:
        """The matrix at frame t with the driving frames on top; a column holds its last frame once its clip ends."""
        at = {d: min(t, self.lengths[d] - 1) for d in self.drivers}
        rows: list[list[np.ndarray | None]] = [[None] + [self.truth[d][at[d]] for d in self.drivers]]
        for r in self.references:
            rows.append([self.reference_crops[r]] + [self.cells[(r, d)][at[d]] for d in self.drivers])
        return rows


def cross_reenact(checkpoint: str | Path, data: str | Path, out: str | Path, cfg: GridConfig) -> dict[str, Any]:
    """Render the matrix and write grid.png, grid.mp4, columns/<driver>.mp4 and grid.json; returns the summary."""
    from apb2face.inference.pipeline import APB2FacePipeline

    out = Path(out)
    dataset = Dataset(data)
    drivers = sorted(set(dataset.identities))
    # each driver names a file columns/<driver>.mp4: refuse names that would write elsewhere before any work
    column_files = {d: output_file(out / "columns", d, ".mp4", source=dataset.root / "dataset.json") for d in drivers}
    pipe = APB2FacePipeline.from_pretrained(checkpoint, device=cfg.device)
    if not pipe.identities:
        raise UserError("checkpoint bundles no identity references", checkpoint)
    driving = _driving_clips(dataset, cfg.split, drivers)
    matrix = render_matrix(pipe, {d: dataset.load_clip(rec) for d, rec in driving.items()}, cfg)
    loudest = write_still(out / "grid.png", matrix)
    write_matrix_video(out / "grid.mp4", matrix)
    write_columns(column_files, matrix)
    summary = {
        "references": matrix.references,
        "drivers": drivers,
        "driving_clips": {d: r.key for d, r in driving.items()},
        "frames": matrix.lengths,
        "loudest_frame": loudest,
        "checkpoint": str(checkpoint),
        "dataset": str(data),
        "files": ["grid.png", "grid.mp4 (silent: every column speaks a different clip)"]
        + [f"columns/{d}.mp4 (with the audio of {driving[d].key})" for d in drivers],
    }
    write_json(out / "grid.json", summary)
    return summary


def render_matrix(pipe: Any, clips: dict[str, Clip], cfg: GridConfig) -> CrossMatrix:
    """Drive every bundled reference with every clip (its first `cfg.max_frames` frames), with progress."""
    from tqdm import tqdm

    references = pipe.identities
    lengths = {d: min(len(c.frames), cfg.max_frames) for d, c in clips.items()}
    cells: dict[tuple[str, str], np.ndarray] = {}
    with tqdm(total=len(references) * sum(lengths.values()), desc="grid", unit="frame", dynamic_ncols=True) as bar:
        for r in references:
            state = pipe.prepare_reference(r)
            for d, clip in clips.items():
                cells[(r, d)] = reenact_clip(pipe, state, clip, lengths[d], cfg.batch_size, bar.update).frames
    return CrossMatrix(
        references=references,
        drivers=list(clips),
        clips=clips,
        lengths=lengths,
        cells=cells,
        truth={d: resize_frames(np.asarray(c.frames[: lengths[d]]), pipe.image_size) for d, c in clips.items()},
        reference_crops={r: pipe.prepare_reference(r).crop for r in references},
        fps=float(next(iter(clips.values())).fps),
    )


def write_still(path: Path, matrix: CrossMatrix) -> dict[str, int]:
    """grid.png: for each column the frame where its speech is loudest (mouth open, most telling); returns the
    frame index per driver."""
    loudest = {
        d: int(np.argmax(A.rms_per_frame(c.audio, matrix.lengths[d], c.fps, c.sample_rate)))
        for d, c in matrix.clips.items()
    }
    rows: list[list[np.ndarray | None]] = [[None] + [matrix.truth[d][loudest[d]] for d in matrix.drivers]]
    for r in matrix.references:
        rows.append([matrix.reference_crops[r]] + [matrix.cells[(r, d)][loudest[d]] for d in matrix.drivers])
    header = ["reference"] + [f"drives: {d}" for d in matrix.drivers]
    write_png(path, tile(rows, header=header, title="rows: reference, columns: driving clip"))
    return loudest


def write_matrix_video(path: Path, matrix: CrossMatrix) -> None:
    """grid.mp4: the whole matrix in motion, silent (every column speaks a different clip)."""
    from apb2face.data.video import write_video

    header = ["reference"] + matrix.drivers
    frames = (even_sides(tile(matrix.frame_grid(t), header=header)) for t in range(max(matrix.lengths.values())))
    write_video(path, frames, fps=matrix.fps)


def write_columns(files: dict[str, Path], matrix: CrossMatrix) -> None:
    """columns/<driver>.mp4: every reference driven by one clip, beside the driving frames, with that clip's audio."""
    from apb2face.data.video import write_video

    for d, path in files.items():
        clip, n = matrix.clips[d], matrix.lengths[d]
        header = [f"driving: {d}"] + matrix.references
        frames = (
            even_sides(tile([[matrix.truth[d][t]] + [matrix.cells[(r, d)][t] for r in matrix.references]], header))
            for t in range(n)
        )
        audio = clip.audio[: int(round(n / clip.fps * clip.sample_rate))]
        write_video(path, frames, fps=matrix.fps, audio=audio, sample_rate=clip.sample_rate)
