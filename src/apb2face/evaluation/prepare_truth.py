"""How close `prepare` gets to known truth: a dataset prepared from `apb2face synth` MP4s vs the renderer's own data.

Each prepared clip names its source video and first source frame (clip.json) and stores its crop boxes in source
pixels (source_boxes.npy), so prepared landmarks are mapped back to source-video pixels and compared there with the
renderer's landmarks: the two datasets frame their crops differently, the source video is the common frame.
Landmark error is the mean point distance over the 478 points in % of the true inter-ocular distance; pose error is
per-angle absolute error in degrees; blinks are events (runs of mean openness < 0.5) matched with +-2 frames of
tolerance (`evaluation.metrics.match_events`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apb2face.data import face
from apb2face.data.format import Dataset
from apb2face.errors import UserError
from apb2face.evaluation.metrics import EventCounts, blink_events, match_events, openness_closed
from apb2face.io import read_json


def crop_to_source(points01: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Landmarks (N, L, 2) in [0, 1] of square crops -> source pixels, given the crops' boxes (N, 3) cx, cy, side."""
    boxes = np.asarray(boxes, np.float64)
    return boxes[:, None, :2] + (np.asarray(points01, np.float64) - 0.5) * boxes[:, None, 2:3]


def compare_with_truth(
    prepared_root: str | Path, truth_root: str | Path, threshold: float = 0.5, tolerance: int = 2
) -> dict:
    """Errors of a prepared dataset against the synth dataset its videos were rendered from.

    Prepared identities must carry the synth identity names (e.g. `--identity-map` with `*/id00/* id00`) and clip
    sources the synth clip names (`<clip>.mp4`)."""
    prepared, truth = Dataset(prepared_root), Dataset(truth_root)
    lm_err, pose_err, idents = [], [], []
    counts = EventCounts()
    frames = clips = 0
    for rec in prepared.clips():
        info = read_json(prepared.clip_dir(rec) / "clip.json")
        key = f"{rec.identity}/{Path(info['source']).stem}"
        try:
            t = truth.load_clip(key)
        except KeyError:
            raise UserError(
                f"prepared clip {rec.key} comes from {info['source']}, which is not {key} in the truth dataset",
                truth_root,
            ) from None
        p = prepared.load_clip(rec)
        start, n = int(info["source_start_frame"]), rec.num_frames
        if start + n > len(t.frames):
            raise UserError(f"prepared clip {rec.key} runs past the end of {key}", prepared_root)
        size = t.frames.shape[1]
        pred_src = crop_to_source(p.landmarks, np.load(prepared.clip_dir(rec) / "source_boxes.npy"))
        true_src = t.landmarks[start : start + n].astype(np.float64) * size
        iod = np.array([face.inter_ocular(x) for x in true_src])
        lm_err.append(np.linalg.norm(pred_src - true_src, axis=2).mean(1) / iod)
        pose_err.append(p.pose.astype(np.float64) - t.pose[start : start + n])
        idents += [rec.identity] * n
        counts = counts + match_events(
            blink_events(openness_closed(p.eyes, threshold)),
            blink_events(openness_closed(t.eyes[start : start + n], threshold)),
            tolerance,
        )
        frames += n
        clips += 1
    if not clips:
        raise UserError("prepared dataset has no clips", prepared_root)
    lm = np.concatenate(lm_err) * 100
    pe = np.concatenate(pose_err)
    who = np.array(idents)
    per_identity = {
        i: {
            "landmark_error_iod_percent": float(lm[who == i].mean()),
            **{f"{k}_bias": float(pe[who == i, j].mean()) for j, k in enumerate(("yaw", "pitch", "roll"))},
            **{f"{k}_mean_abs": float(np.abs(pe[who == i, j]).mean()) for j, k in enumerate(("yaw", "pitch", "roll"))},
        }
        for i in sorted(set(idents))
    }
    return {
        "clips": clips,
        "frames": frames,
        "landmark_error_iod_percent": {
            "mean": float(lm.mean()),
            "p95": float(np.percentile(lm, 95)),
            "max": float(lm.max()),
        },
        "pose_error_degrees": {
            k: {
                "mean_abs": float(np.abs(pe[:, i]).mean()),
                "bias": float(pe[:, i].mean()),
                "rms": float(np.sqrt((pe[:, i] ** 2).mean())),
            }
            for i, k in enumerate(("yaw", "pitch", "roll"))
        },
        "blink": {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "f1": counts.f1},
        "per_identity": per_identity,
    }
