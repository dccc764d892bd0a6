"""What a mouth should be doing for a soundtrack, read off a checkpoint's fuser: the expected mouth opening per video
frame. `prepare --people` and `enroll` give it to the active-speaker detection (data.prepare.active_speaker), which
then picks the face whose mouth does what the audio says a mouth should do, rather than the one that follows the
audio's loudness.

The fuser maps each frame's audio window, with a neutral head pose (0, 0, 0) and open eyes (1, 1), to the face's
landmarks; the mouth opening of those (inner-lip gap over mouth width, as data.face.mouth_opening measures a tracked
face) is the expected opening.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apb2face.data.face import MOUTH_INNER_BOTTOM, MOUTH_INNER_TOP, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.models.config import GEOMETRY_POINTS

BATCH = 256  # frames per fuser call

# where the four mesh points of the mouth opening sit in the fuser's landmarks (GEOMETRY_POINTS order)
TOP, BOTTOM, LEFT, RIGHT = (
    GEOMETRY_POINTS.index(i) for i in (MOUTH_INNER_TOP, MOUTH_INNER_BOTTOM, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER)
)


def landmark_mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(n, K, 2) fuser landmarks -> (n,) inner-lip gap over mouth width (data.face.mouth_opening's measure)."""
    gap = np.linalg.norm(landmarks[:, TOP] - landmarks[:, BOTTOM], axis=-1)
    width = np.linalg.norm(landmarks[:, LEFT] - landmarks[:, RIGHT], axis=-1)
    return gap / (width + 1e-9)


def expected_mouth(pipe: APB2FacePipeline, samples: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """(num_frames,) the mouth opening the pipeline's fuser predicts for 16 kHz mono `samples`, one value per video
    frame at `fps`, with a neutral pose and open eyes."""
    if num_frames <= 0:
        return np.zeros(0)
    features = pipe.audio_features(np.asarray(samples, np.float32))
    out = np.empty(num_frames)
    for start in range(0, num_frames, BATCH):
        idx = np.arange(start, min(num_frames, start + BATCH))
        windows = pipe.audio_windows(features, idx, fps)
        pose, eyes = np.zeros((len(idx), 3), np.float32), np.ones((len(idx), 2), np.float32)
        _latent, landmarks = pipe.fuse(windows, pose, eyes)
        out[idx] = landmark_mouth_opening(landmarks.float().cpu().numpy())
    return out


class FuserListener:
    """`listener(samples, num_frames, fps) -> expected mouth opening (num_frames,)` from the fuser of `checkpoint`
    (None: the demo checkpoint). Loads the checkpoint on first use; picklable (a worker process loads its own)."""

    def __init__(self, checkpoint: str | Path | None = None) -> None:
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.pipe: APB2FacePipeline | None = None

    def __call__(self, samples: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        if self.pipe is None:
            self.pipe = APB2FacePipeline.from_pretrained(self.checkpoint)
        return expected_mouth(self.pipe, samples, num_frames, fps)

    def __getstate__(self) -> dict:
        return {"checkpoint": self.checkpoint, "pipe": None}
