"""The expected mouth (inference/listen.py): what a checkpoint's fuser draws for a soundtrack, per video frame."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from apb2face.data import face
from apb2face.data.synth.speech import synthesize
from apb2face.inference.listen import FuserListener, landmark_mouth_opening
from apb2face.inference.pipeline import default_checkpoint
from apb2face.models.config import GEOMETRY_POINTS


def test_landmark_mouth_opening_is_the_mesh_measure_on_the_fuser_points() -> None:
    rng = np.random.default_rng(0)
    mesh = rng.random((3, 478, 3))
    got = landmark_mouth_opening(mesh[:, list(GEOMETRY_POINTS), :2])
    assert np.allclose(got, [face.mouth_opening(m) for m in mesh])


@pytest.mark.skipif(default_checkpoint() is None, reason="the demo checkpoint is not installed")
def test_the_demo_fuser_opens_the_mouth_for_speech_and_not_for_silence() -> None:
    speech = synthesize("Hello there, how are you doing today?").audio
    silence = np.zeros(16000 * 2, np.float32)
    listener = FuserListener()
    fps = 25.0
    talk = listener(np.concatenate([silence, speech, silence]), 100 + int(len(speech) / 16000 * fps), fps)
    assert talk.shape == (100 + int(len(speech) / 16000 * fps),) and np.isfinite(talk).all()
    quiet, spoken = talk[5:40], talk[60:-60]
    assert spoken.std() > 3 * quiet.std() + 1e-3  # the mouth moves with the syllables, not in the silence
    copy = pickle.loads(pickle.dumps(listener))  # a worker process gets the checkpoint, not the loaded model
    assert copy.pipe is None and copy.checkpoint is None
    assert np.allclose(copy(silence, 50, fps)[:30], talk[:30], atol=1e-4)  # before the speech comes into view
