"""Telling voices apart (data/prepare/voices.py): clustering, merging one voice split in two, and the decoding over
time, on made-up embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from apb2face.data.prepare import voices as vc


def _voice_frames(centre: np.ndarray, n: int, rng: np.random.Generator, spread: float = 0.35) -> np.ndarray:
    """n unit vectors scattered around `centre` (cosine to it about 0.8 for spread 0.35 in 32 dimensions)."""
    return vc.unit(centre + spread * rng.standard_normal((n, len(centre))) / np.sqrt(len(centre)) * 4)


def test_two_voices_are_found_and_one_voice_stays_one() -> None:
    rng = np.random.default_rng(0)
    a, b = vc.unit(rng.standard_normal(32)), vc.unit(rng.standard_normal(32))
    both = np.concatenate([_voice_frames(a, 200, rng), _voice_frames(b, 100, rng)])
    centres = vc.voice_centres(both, max_voices=2, same_voice=0.8)
    assert len(centres) == 2
    assert sorted(np.argmax(centres @ np.stack([a, b]).T, axis=1).tolist()) == [0, 1]
    one = vc.voice_centres(_voice_frames(a, 300, rng), max_voices=3, same_voice=0.8)
    assert len(one) == 1 and one[0] @ a > 0.95
    with pytest.raises(ValueError, match="no speech"):
        vc.voice_centres(np.zeros((0, 32)), 2, 0.8)


def test_smooth_path_pays_for_each_change() -> None:
    scores = np.zeros((12, 2))
    scores[:, 0] = 1.0
    scores[5:7] = [0.0, 0.8]  # a 2-frame blip that gains 1.6 in all
    assert vc.smooth_path(scores, switch_cost=0.0).tolist() == [0] * 5 + [1] * 2 + [0] * 5
    assert vc.smooth_path(scores, switch_cost=1.0).tolist() == [0] * 12  # two changes cost more than the blip gains
    scores[7:] = [0.0, 1.0]  # a real change of voice: one change, kept
    assert vc.smooth_path(scores, switch_cost=1.0).tolist() == [0] * 5 + [1] * 7
    assert vc.smooth_path(np.zeros((0, 2)), 1.0).size == 0


def test_voice_labels_follow_the_turns_and_leave_silence_to_nobody() -> None:
    rng = np.random.default_rng(1)
    a, b = vc.unit(rng.standard_normal(32)), vc.unit(rng.standard_normal(32))
    truth = np.repeat([0, 1, 0, 1], 60)
    embeddings = np.where(truth[:, None] == 0, _voice_frames(a, 240, rng), _voice_frames(b, 240, rng))
    speech = np.ones(240, bool)
    speech[100:110] = False  # a pause inside a turn
    labels = vc.voice_labels(embeddings, speech, max_voices=2, same_voice=0.8, switch_cost=2.0)
    assert (labels[~speech] == vc.NO_VOICE).all()
    voiced = labels[speech]
    mapped = voiced if voiced[0] == 0 else 1 - voiced
    assert (mapped == truth[speech]).mean() > 0.97
    assert len(np.flatnonzero(np.diff(mapped))) == 3  # three changes of voice, no flicker
    assert (vc.voice_labels(embeddings, np.zeros(240, bool), 2, 0.8, 2.0) == vc.NO_VOICE).all()
    with pytest.raises(ValueError, match="do not match"):
        vc.voice_labels(embeddings, speech[:10], 2, 0.8, 2.0)
