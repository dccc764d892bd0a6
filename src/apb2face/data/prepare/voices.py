"""Who speaks when, by the sound of the voice alone (speaker diarization): which speech frames share one voice.

Pure functions of per-frame voice embeddings (`data.voice.voice_per_frame`). The speech frames are clustered into
at most `max_voices` voices (k-means on the unit sphere); two clusters whose centres are more alike than
`same_voice` (cosine) are one voice split in two and are merged, so a video where one person does all the talking
keeps one voice. Each frame then gets the voice whose centre its embedding is closest to, decoded over time with
a cost for every change of voice (`smooth_path`, Viterbi): a turn changes where the embeddings, which see 1.6 s of
audio, have moved most of the way to the next voice, not at every dip. Silent frames belong to no voice.

Which face each voice belongs to is the active-speaker detection's question (`active_speaker.voice_speaker_turns`).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2

NO_VOICE = -1


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norm, 1e-12)


def voice_centres(embeddings: np.ndarray, max_voices: int, same_voice: float, seed: int = 0) -> np.ndarray:
    """(voices, dim) unit centres of the voices among `embeddings` (speech frames only): k-means with `max_voices`
    clusters, then the two most alike centres merged while their cosine exceeds `same_voice`."""
    x = unit(np.asarray(embeddings, np.float64))
    if len(x) == 0:
        raise ValueError("no speech frames to find voices in")
    k = max(1, min(max_voices, len(x)))
    if k == 1:
        return unit(x.mean(0, keepdims=True))
    _, label = kmeans2(x, k, minit="++", seed=seed)
    members = [x[label == j] for j in range(k) if (label == j).any()]
    while len(members) > 1:
        centres = unit(np.stack([m.mean(0) for m in members]))
        cos = centres @ centres.T
        np.fill_diagonal(cos, -np.inf)
        a, b = np.unravel_index(int(np.argmax(cos)), cos.shape)
        if cos[a, b] <= same_voice:
            break
        members[a] = np.concatenate([members[a], members[b]])
        del members[b]
    return unit(np.stack([m.mean(0) for m in members]))


def smooth_path(scores: np.ndarray, switch_cost: float) -> np.ndarray:
    """(n,) the state sequence maximising the sum of `scores` (n, states) less `switch_cost` per change of state."""
    n, states = scores.shape
    if n == 0:
        return np.zeros(0, np.int64)
    total = scores[0].astype(np.float64).copy()
    back = np.zeros((n, states), np.int64)
    change = switch_cost * (1.0 - np.eye(states))
    for t in range(1, n):
        options = total[:, None] - change  # [from, to]
        back[t] = np.argmax(options, axis=0)
        total = options[back[t], np.arange(states)] + scores[t]
    path = np.zeros(n, np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def voice_labels(
    embeddings: np.ndarray, speech: np.ndarray, max_voices: int, same_voice: float, switch_cost: float, seed: int = 0
) -> np.ndarray:
    """(n,) per frame the voice speaking (0, 1, ...; NO_VOICE where `speech` is False): `embeddings` (n, dim) the
    voice around each frame. Silent frames add nothing to any voice, so a voice carries on over a pause for free."""
    embeddings = np.asarray(embeddings, np.float64)
    speech = np.asarray(speech, bool)
    if embeddings.ndim != 2 or len(embeddings) != len(speech):
        raise ValueError(f"embeddings {embeddings.shape} and speech {speech.shape} frames do not match")
    if not speech.any():
        return np.full(len(speech), NO_VOICE, np.int64)
    centres = voice_centres(embeddings[speech], max_voices, same_voice, seed)
    similarity = np.where(speech[:, None], unit(embeddings) @ centres.T, 0.0)
    return np.where(speech, smooth_path(similarity, switch_cost), NO_VOICE).astype(np.int64)
