"""Cross-identity reenactment (`apb2face grid`, the paper's Figure 2), and the labelled image grids every
evaluation output uses.

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

import cv2
import numpy as np

from apb2face.io import atomic_path

log = logging.getLogger(__name__)

MIN_TILE = 128  # tiles smaller than this are enlarged (nearest neighbour: pixels shown as they are)
CAPTION_PX = 20
PAD = 4
BACKGROUND = 255


# ----------------------------------------------------------------------------------------------- image helpers
def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
    return path


def display_size(size: int) -> int:
    """Tile side used to show `size`-pixel frames: enlarged by an integer factor up to at least MIN_TILE."""
    return size * max(1, int(np.ceil(MIN_TILE / size)))


def enlarge(image: np.ndarray, side: int) -> np.ndarray:
    if image.shape[0] == side and image.shape[1] == side:
        return image
    interp = cv2.INTER_NEAREST if side > image.shape[0] else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=interp)


def caption(width: int, text: str, height: int = CAPTION_PX) -> np.ndarray:
    """A white bar with dark centred text, cut to fit."""
    bar = np.full((height, width, 3), BACKGROUND, np.uint8)
    scale = 0.42
    while text:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if tw <= width - 4:
            break
        text = text[:-1]
    if text:
        cv2.putText(
            bar,
            text,
            (max(2, (width - tw) // 2), (height + th) // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (30, 30, 30),
            1,
            cv2.LINE_AA,
        )
    return bar


def tile(
    grid: list[list[np.ndarray | None]],
    header: list[str] | None = None,
    row_labels: list[str] | None = None,
    title: str | None = None,
    side: int | None = None,
) -> np.ndarray:
    """Lay out rows of equally sized RGB images (None = empty cell) with optional column headers, row labels
    (a caption above each row's first cell) and a title bar."""
    first = next(img for row in grid for img in row if img is not None)
    side = side or display_size(first.shape[0])
    cols = max(len(r) for r in grid)
    width = cols * side + (cols + 1) * PAD
    parts = []
    if title:
        parts.append(caption(width, title, CAPTION_PX + 4))
    if header:
        bar = np.full((CAPTION_PX, width, 3), BACKGROUND, np.uint8)
        for c, text in enumerate(header[:cols]):
            x = PAD + c * (side + PAD)
            bar[:, x : x + side] = caption(side, text)
        parts.append(bar)
    for r, row in enumerate(grid):
        if row_labels:
            parts.append(caption(width, row_labels[r]))
        band = np.full((side + PAD, width, 3), BACKGROUND, np.uint8)
        for c, img in enumerate(row):
            if img is not None:
                x = PAD + c * (side + PAD)
                band[PAD : PAD + side, x : x + side] = enlarge(img, side)
        parts.append(band)
    parts.append(np.full((PAD, width, 3), BACKGROUND, np.uint8))
    return np.concatenate(parts, axis=0)


# -------------------------------------------------------------------------------------------- the cross matrix
@dataclass
class GridConfig:
    split: str = "test"
    max_frames: int = 125  # frames of each driving clip (5 s at 25 fps)
    batch_size: int = 16
    device: str = "cpu"


def _driving_clips(dataset: Any, split: str, identities: list[str]) -> dict[str, Any]:
    """The first clip of each driving identity in `split` (falling back to any clip of it)."""
    from apb2face.errors import UserError

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

    from apb2face.data import audio as A
    from apb2face.data.format import Dataset
    from apb2face.data.video import write_video
    from apb2face.errors import UserError
    from apb2face.evaluation.evaluate import generate_clip
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.io import write_json

    out = Path(out)
    dataset = Dataset(data)
    pipe = APB2FacePipeline.from_pretrained(checkpoint, device=cfg.device)
    refs = pipe.identities
    if not refs:
        raise UserError("checkpoint bundles no identity references", checkpoint)
    drivers = sorted(set(dataset.identities))
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
    truth = {d: _fit(np.asarray(c.frames[: lengths[d]]), size) for d, c in clips.items()}
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
            yield _even(tile(grid, header=["reference"] + drivers))

    write_video(out / "grid.mp4", matrix_frames(), fps=fps)

    # one column at a time, with that clip's own audio
    for d in drivers:
        clip = clips[d]
        n = lengths[d]
        audio = clip.audio[: int(round(n / clip.fps * clip.sample_rate))]

        def column_frames(d: str = d, n: int = n):
            for t in range(n):
                grid = [[truth[d][t]] + [cells[(r, d)][t] for r in refs]]
                yield _even(tile(grid, header=[f"driving: {d}"] + refs))

        write_video(out / "columns" / f"{d}.mp4", column_frames(), fps=fps, audio=audio, sample_rate=clip.sample_rate)
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


def _fit(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size:
        return np.ascontiguousarray(frames)
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def _even(image: np.ndarray) -> np.ndarray:
    """H.264 (yuv420p) needs even sides: pad one white row/column where needed."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=BACKGROUND)
