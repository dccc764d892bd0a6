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
from apb2face.data.format import ClipRecord, Dataset
from apb2face.errors import UserError
from apb2face.evaluation.figures import even_sides, output_file, resize_frames, tile, write_png
from apb2face.evaluation.reenact import generate_clip
from apb2face.io import write_json

log = logging.getLogger(__name__)


@dataclass
class GridConfig:
    split: str = "test"
    max_frames: int = 125  # frames of each driving clip (5 s at 25 fps)
    batch_size: int = 16
    device: str = "cpu"


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


def cross_reenact(checkpoint: str | Path, data: str | Path, out: str | Path, cfg: GridConfig) -> dict[str, Any]:
    """Render the matrix; returns a summary (identities, driving clips, files)."""
    from tqdm import tqdm

    from apb2face.data.video import write_video
    from apb2face.inference.pipeline import APB2FacePipeline

    out = Path(out)
    dataset = Dataset(data)
    drivers = sorted(set(dataset.identities))
    # each driver names a file columns/<driver>.mp4: refuse names that would write elsewhere before any work
    column_files = {d: output_file(out / "columns", d, ".mp4", source=dataset.root / "dataset.json") for d in drivers}
    pipe = APB2FacePipeline.from_pretrained(checkpoint, device=cfg.device)
    refs = pipe.identities
    if not refs:
        raise UserError("checkpoint bundles no identity references", checkpoint)
    driving = _driving_clips(dataset, cfg.split, drivers)
    size = pipe.image_size
    clips = {d: dataset.load_clip(rec) for d, rec in driving.items()}
    lengths = {d: min(len(c.frames), cfg.max_frames) for d, c in clips.items()}
    cells: dict[tuple[str, str], np.ndarray] = {}
    with tqdm(total=len(refs) * sum(lengths.values()), desc="grid", unit="frame", dynamic_ncols=True) as bar:
        for r in refs:
            state = pipe.prepare_reference(r)
            for d in drivers:
                cells[(r, d)] = generate_clip(pipe, state, clips[d], lengths[d], cfg.batch_size, bar.update)
    truth = {d: resize_frames(np.asarray(c.frames[: lengths[d]]), size) for d, c in clips.items()}
    ref_crops = {r: pipe.prepare_reference(r).crop for r in refs}

    # the still: for each column the frame where its speech is loudest (mouth open, most telling)
    loud = {d: int(np.argmax(A.rms_per_frame(c.audio, lengths[d], c.fps, c.sample_rate))) for d, c in clips.items()}
    rows = [[None] + [truth[d][loud[d]] for d in drivers]]
    rows += [[ref_crops[r]] + [cells[(r, d)][loud[d]] for d in drivers] for r in refs]
    still = tile(
        rows, header=["reference"] + [f"drives: {d}" for d in drivers], title="rows: reference, columns: driving clip"
    )
    write_png(out / "grid.png", still)

    # the whole matrix in motion, silent; each column holds its last frame once its clip ends
    fps = float(dataset.meta.fps)
    n_max = max(lengths.values())

    def matrix_frames():
        for t in range(n_max):
            grid = [[None] + [truth[d][min(t, lengths[d] - 1)] for d in drivers]]
            grid += [[ref_crops[r]] + [cells[(r, d)][min(t, lengths[d] - 1)] for d in drivers] for r in refs]
            yield even_sides(tile(grid, header=["reference"] + drivers))

    write_video(out / "grid.mp4", matrix_frames(), fps=fps)

    # one column at a time, with that clip's own audio
    for d in drivers:
        clip = clips[d]
        n = lengths[d]
        audio = clip.audio[: int(round(n / clip.fps * clip.sample_rate))]

        def column_frames(d: str = d, n: int = n):
            for t in range(n):
                grid = [[truth[d][t]] + [cells[(r, d)][t] for r in refs]]
                yield even_sides(tile(grid, header=[f"driving: {d}"] + refs))

        write_video(column_files[d], column_frames(), fps=fps, audio=audio, sample_rate=clip.sample_rate)
    summary = {
        "references": refs,
        "drivers": drivers,
        "driving_clips": {d: r.key for d, r in driving.items()},
        "frames": lengths,
        "loudest_frame": loud,
        "checkpoint": str(checkpoint),
        "dataset": str(data),
        "files": ["grid.png", "grid.mp4 (silent: every column speaks a different clip)"]
        + [f"columns/{d}.mp4 (with the audio of {driving[d].key})" for d in drivers],
    }
    write_json(out / "grid.json", summary)
    return summary
