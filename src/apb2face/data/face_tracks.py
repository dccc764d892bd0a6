"""Several faces followed through a video: a second mesh on the same face dropped (`distinct`), and each frame's
faces given to the tracks whose last box is nearest (`match_to_tracks`; the face mesh does not keep its faces'
order from frame to frame). Shared by `prepare` (several people in one video) and `generate --scene`."""

from __future__ import annotations

import numpy as np

from apb2face.data.face import CropBox, crop_box_from_landmarks

MATCH_GATE = 0.6  # a detection joins a track whose last box centre is within this fraction of the box side

Box = tuple[float, float, float]  # cx, cy, side


def distinct(found: list[np.ndarray], crop_scale: float) -> list[np.ndarray]:
    """The faces minus any second mesh on the same face (centres closer than MATCH_GATE / 2 box sides)."""
    kept: list[np.ndarray] = []
    boxes: list[CropBox] = []
    for landmarks in found:
        box = crop_box_from_landmarks(landmarks, crop_scale)
        if all(np.hypot(box.cx - b.cx, box.cy - b.cy) >= MATCH_GATE / 2 * max(b.side, 1.0) for b in boxes):
            kept.append(landmarks)
            boxes.append(box)
    return kept


def match_to_tracks(last: list[Box | None], boxes: list[CropBox]) -> dict[int, int]:
    """track index -> face index: nearest pair first (box centres, within MATCH_GATE of the track's box side); a
    track without a last box, or with no face near it, gets none."""
    pairs = []
    for t, previous in enumerate(last):
        if previous is None:
            continue
        cx, cy, side = previous
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
    return given
