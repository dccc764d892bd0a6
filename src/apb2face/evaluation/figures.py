"""The labelled image grids every evaluation output is made of (`evaluate` strips, `grid`, `decouple`), and the
frame resizing they share. Nothing here knows about models or metrics, so every evaluation module can use it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from apb2face.data.format import check_name
from apb2face.errors import UserError
from apb2face.io import atomic_path

MIN_TILE = 128  # tiles smaller than this are enlarged (nearest neighbour: pixels shown as they are)
CAPTION_PX = 20
PAD = 4
BACKGROUND = 255


def output_file(directory: Path, name: str, suffix: str, source: str | Path | None = None) -> Path:
    """DIRECTORY/<name><suffix> for a name read from the user's files (an identity, a clip), refusing any name that
    is not a plain file name: one with a separator or a leading '.' ('..', '../x', '/abs') would write outside
    DIRECTORY. The rule is the one the dataset writer applies to identity and clip names. `source`: where the name
    was read, named in the error."""
    try:
        check_name(name, "output")
    except ValueError:
        raise UserError(
            f"name {name!r} cannot name an output file (no '/', no leading '.', no surrounding spaces)", source
        ) from None
    return Path(directory) / f"{name}{suffix}"


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


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Square frames (n, H, W, 3) resized to (n, size, size, 3) for measuring: area when shrinking (no aliasing),
    cubic when enlarging."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return np.ascontiguousarray(frames)
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(np.asarray(f), (size, size), interpolation=interp) for f in frames])


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


def even_sides(image: np.ndarray) -> np.ndarray:
    """H.264 (yuv420p) needs even sides: pad one background row/column where needed."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=BACKGROUND)
