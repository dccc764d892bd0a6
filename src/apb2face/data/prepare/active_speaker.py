"""Active-speaker detection: which face of a scene is speaking at each moment, decided from the video itself.

Pure functions of per-frame signals. The face that speaks is the one whose mouth opening follows the audio's speech
envelope: each face's mouth is correlated with the envelope over a sliding window (`windowed_correlation`), at the
one audio/video lag that suits the whole file best (an offset is a property of the file, not of a face); a frame
goes to the face whose correlation beats every other face's by `margin` (and reaches `min_r`); silent frames go to
nobody. Undecided frames and short silences take the label of their neighbours, and a turn shorter than `min_turn`
is given to its neighbours (`label_frames`). `speaker_turns` returns the turns with the evidence: the mean
correlation of every face over each turn.

With an *expected* mouth (`speaker_turns(..., expected=...)`: per frame, the mouth opening the audio calls for, e.g.
what a checkpoint's fuser draws for it; the data layer takes it as given) each face's mouth is compared with that
instead of the envelope: both have their drift slower than `detrend` frames removed (`high_pass`: a smile, a head
turn), and each face has its own lag, the one in +-max_lag at which it follows the expected mouth best over the file
(`face_scores_per_lag`): the faces of one scene may come from recordings with different offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from apb2face.data.prepare.sync import runs
from apb2face.data.prepare.voices import NO_VOICE

NOBODY = -1  # silence: no face speaks
UNDECIDED = -2  # speech, but no face's mouth follows it clearly enough (filled from the neighbours)


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch [start, end) in frames, and the mean windowed correlation of every face over it."""

    start: int
    end: int
    speaker: int  # index of the face (left to right)
    scores: tuple[float, ...]  # per face, mean r over the turn's decided frames

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SpeakerDecision:
    """The per-frame labels (face index, NOBODY), the turns, and the audio/video lag the correlation used."""

    labels: np.ndarray  # (n,) int
    scores: np.ndarray  # (faces, n) windowed r at `lag` (NaN where a face is missing)
    turns: list[Turn]
    lag: int  # frames; > 0: a mouth movement at t sounds at t + lag (with an expected mouth: the first face's)
    lags: tuple[int, ...] = ()  # per face, with an expected mouth or voices (each face's own lag); empty otherwise
    # voices first (voice_speaker_turns): per voice, the face it was given to (NOBODY: no face follows it) and the
    # evidence, each face's mean r over that voice's frames; empty otherwise
    voice_faces: tuple[int, ...] = ()
    voice_evidence: tuple[tuple[float, ...], ...] = ()


def speech_envelope(rms: np.ndarray, smooth: int = 3) -> np.ndarray:
    """The audio's per-frame RMS, smoothed by a `smooth`-frame box (a mouth opens over a few frames)."""
    rms = np.asarray(rms, np.float64)
    if smooth <= 1 or rms.size < smooth:
        return rms
    return np.convolve(rms, np.ones(smooth) / smooth, mode="same")


def shifted(values: np.ndarray, lag: int) -> np.ndarray:
    """out[t] = values[t + lag], NaN where that falls outside."""
    out = np.full(len(values), np.nan)
    if lag >= 0:
        out[: len(values) - lag] = values[lag:]
    else:
        out[-lag:] = values[: len(values) + lag]
    return out


def windowed_correlation(x: np.ndarray, y: np.ndarray, window: int, min_valid: float = 0.5) -> np.ndarray:
    """Pearson r of x and y over the `window` frames centred on each frame, using the frames where both are finite
    (NaN where fewer than `min_valid` of the window are, or either series is flat there)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    ok = np.isfinite(x) & np.isfinite(y)
    xv, yv = np.where(ok, x, 0.0), np.where(ok, y, 0.0)

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        lo = np.clip(np.arange(n) - window // 2, 0, n)
        hi = np.clip(np.arange(n) - window // 2 + window, 0, n)
        return c[hi] - c[lo]

    count = window_sum(ok.astype(np.float64))
    sx, sy = window_sum(xv), window_sum(yv)
    sxx, syy, sxy = window_sum(xv * xv), window_sum(yv * yv), window_sum(xv * yv)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / count
        vx, vy = sxx - sx * sx / count, syy - sy * sy / count
        r = cov / np.sqrt(vx * vy)
    flat = (vx <= 1e-12 * np.maximum(count, 1)) | (vy <= 1e-12 * np.maximum(count, 1))
    r[(count < max(3.0, min_valid * window)) | flat] = np.nan
    return np.clip(r, -1.0, 1.0)


def face_scores(mouths: np.ndarray, envelope: np.ndarray, window: int, max_lag: int) -> tuple[np.ndarray, int]:
    """Windowed r of every face's mouth (faces, n) with the envelope, at the lag in +-max_lag where the best face of
    each moment follows the audio best on average over the file; (scores, lag)."""
    best_lag, best_value, best_scores = 0, -np.inf, None
    for lag in range(-max_lag, max_lag + 1):
        env = shifted(envelope, lag)
        scores = np.stack([windowed_correlation(m, env, window) for m in mouths])
        top = np.nanmax(np.where(np.isfinite(scores), scores, -np.inf), axis=0)
        value = float(np.mean(top[np.isfinite(top)])) if np.isfinite(top).any() else -np.inf
        if value > best_value + 1e-9 or best_scores is None:
            best_lag, best_value, best_scores = lag, value, scores
    return best_scores, best_lag


def box_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over `width` frames (the ends repeat the edge values)."""
    values = np.asarray(values, np.float64)
    if width <= 1 or values.size == 0:
        return values
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def interpolate_missing(values: np.ndarray) -> np.ndarray:
    """NaN frames filled linearly from the nearest finite ones (all zeros when fewer than two are finite)."""
    v = np.asarray(values, np.float64).copy()
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return np.zeros_like(v)
    at = np.arange(len(v))
    v[~ok] = np.interp(at[~ok], at[ok], v[ok])
    return v


def high_pass(values: np.ndarray, width: int) -> np.ndarray:
    """`values` less their `width`-frame moving average: what changes faster than `width` frames (NaN stays NaN;
    missing frames are bridged linearly for the average only)."""
    filled = interpolate_missing(values)
    return np.where(np.isfinite(values), filled - box_mean(filled, width), np.nan)


def face_scores_per_lag(
    mouths: np.ndarray, reference: np.ndarray, window: int, max_lag: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Windowed r of every face's mouth (faces, n) with `reference`, each face at the lag in +-max_lag where its mean
    r over the file is highest (ties go to the smaller lag); (scores, lags)."""
    scores, lags = [], []
    for mouth in mouths:
        best_lag, best_value, best = 0, -np.inf, np.full(len(reference), np.nan)
        for lag in sorted(range(-max_lag, max_lag + 1), key=abs):
            r = windowed_correlation(mouth, shifted(reference, lag), window)
            value = float(np.mean(r[np.isfinite(r)])) if np.isfinite(r).any() else -np.inf
            if value > best_value + 1e-9:
                best_lag, best_value, best = lag, value, r
        scores.append(best)
        lags.append(best_lag)
    return np.stack(scores), tuple(lags)


def frame_decisions(scores: np.ndarray, silent: np.ndarray, margin: float, min_r: float) -> np.ndarray:
    """Per frame: NOBODY when silent; the face whose r beats every other face's by `margin` and reaches `min_r`;
    else UNDECIDED."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.sort(s, axis=0)
    best = np.argmax(s, axis=0)
    top = order[-1]
    second = order[-2] if len(s) > 1 else np.full(s.shape[1], -np.inf)
    with np.errstate(invalid="ignore"):  # -inf - -inf where no face is seen
        clear = (top >= min_r) & (top - second >= margin)
    labels = np.where(clear, best, UNDECIDED)
    return np.where(np.asarray(silent, bool), NOBODY, labels).astype(np.int64)


def fill_from_neighbours(labels: np.ndarray) -> np.ndarray:
    """Each UNDECIDED run takes its neighbours' label: the same one when both sides agree, else split at its middle
    (a run at either end takes its one neighbour; NOBODY never spreads into speech, it stays where it is)."""
    out = labels.copy()
    for a, b in runs(labels == UNDECIDED):
        left = labels[a - 1] if a > 0 else UNDECIDED
        right = labels[b] if b < len(labels) else UNDECIDED
        left = UNDECIDED if left == NOBODY else left
        right = UNDECIDED if right == NOBODY else right
        if left == UNDECIDED and right == UNDECIDED:
            continue
        if left == UNDECIDED or right == UNDECIDED or left == right:
            out[a:b] = right if left == UNDECIDED else left
        else:
            mid = (a + b) // 2
            out[a:mid], out[mid:b] = left, right
    return out


def label_runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) of each run of equal labels."""
    if len(labels) == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(labels)]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, ends)]


def label_frames(decisions: np.ndarray, min_turn: int, bridge: int) -> np.ndarray:
    """Turn per-frame decisions into turns: silences shorter than `bridge` frames inside speech and undecided frames
    take their neighbours' label; a speaker's run shorter than `min_turn` frames is given to its neighbours (the
    shortest first), until every turn lasts at least `min_turn`. Left-over undecided frames become NOBODY."""
    labels = decisions.copy()
    for a, b, label in label_runs(labels):
        if label == NOBODY and b - a < bridge and a > 0 and b < len(labels):
            labels[a:b] = UNDECIDED
    labels = fill_from_neighbours(labels)
    while True:
        short = [(b - a, a, b) for a, b, label in label_runs(labels) if label >= 0 and b - a < min_turn]
        if not short:
            break
        _, a, b = min(short)
        before = labels[a - 1] if a > 0 else NOBODY
        after = labels[b] if b < len(labels) else NOBODY
        if before < 0 and after < 0:  # a short turn between silences: too short to be anyone's turn
            labels[a:b] = NOBODY
            continue
        labels[a:b] = UNDECIDED
        labels = fill_from_neighbours(labels)
    return np.where(labels == UNDECIDED, NOBODY, labels)


def speaker_turns(
    mouths: np.ndarray,
    rms: np.ndarray,
    silent: np.ndarray,
    *,
    window: int,
    max_lag: int,
    margin: float,
    min_r: float,
    min_turn: int,
    bridge: int,
    expected: np.ndarray | None = None,
    detrend: int = 13,
) -> SpeakerDecision:
    """Who speaks when: `mouths` (faces, n) mouth opening per frame (NaN where a face is missing), `rms` (n,) audio
    RMS per frame, `silent` (n,) frames without speech; `expected` (n,) the mouth opening the audio calls for (None:
    the faces follow the RMS envelope instead), compared after removing drift slower than `detrend` frames. All
    lengths in frames."""
    mouths = np.asarray(mouths, np.float64)
    if mouths.ndim != 2 or mouths.shape[1] != len(rms) or len(silent) != len(rms):
        raise ValueError(f"mouths {mouths.shape}, rms {len(rms)} and silent {len(silent)} frames do not match")
    lags: tuple[int, ...] = ()
    if expected is None:
        scores, lag = face_scores(mouths, speech_envelope(rms), window, max_lag)
    else:
        expected = np.asarray(expected, np.float64)
        if expected.shape != (len(rms),):
            raise ValueError(f"expected mouth {expected.shape} and rms {len(rms)} frames do not match")
        detrended = np.stack([high_pass(m, detrend) for m in mouths])
        scores, lags = face_scores_per_lag(detrended, high_pass(expected, detrend), window, max_lag)
        lag = lags[0] if lags else 0
    decisions = frame_decisions(scores, silent, margin, min_r)
    labels = label_frames(decisions, min_turn, bridge)
    decided = decisions >= 0
    turns = []
    for a, b, label in label_runs(labels):
        if label < 0:
            continue
        use = decided[a:b] if decided[a:b].any() else np.ones(b - a, bool)
        per_face = tuple(_mean_finite(scores[f, a:b][use]) for f in range(len(scores)))
        turns.append(Turn(a, b, label, per_face))
    return SpeakerDecision(labels, scores, turns, lag, lags)


@dataclass(frozen=True)
class Evidence:
    """What a face's mouth is compared with: `reference` (n,) per frame, over `window` frames, at lags in
    +-`max_lag`; `detrend` > 0 removes drift slower than that many frames from both first."""

    reference: np.ndarray
    window: int
    max_lag: int
    detrend: int = 0


def voice_face_evidence(
    mouths: np.ndarray, voices: np.ndarray, evidence: Evidence
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How well each face's mouth follows `evidence.reference` while each voice speaks: (voices, faces) the mean
    windowed r over that voice's frames at the lag that suits that face and voice best, those lags, and (faces, lags,
    n) the windowed r per lag (lags in order -max_lag..max_lag). -inf where a face is never seen with a voice."""
    reference = evidence.reference
    if evidence.detrend > 0:
        mouths = np.stack([high_pass(m, evidence.detrend) for m in mouths])
        reference = high_pass(reference, evidence.detrend)
    count = int(voices.max()) + 1 if (voices >= 0).any() else 0
    lag_range = range(-evidence.max_lag, evidence.max_lag + 1)
    per_lag = np.stack(
        [
            np.stack([windowed_correlation(m, shifted(reference, lag), evidence.window) for lag in lag_range])
            for m in mouths
        ]
    )
    mean = np.full((count, len(mouths)), -np.inf)
    lags = np.zeros((count, len(mouths)), np.int64)
    for v in range(count):
        for f in range(len(mouths)):
            for j in sorted(range(len(lag_range)), key=lambda j: abs(lag_range[j])):  # ties go to the smaller lag
                r = per_lag[f, j][voices == v]
                r = r[np.isfinite(r)]
                if r.size and r.mean() > mean[v, f] + 1e-9:
                    mean[v, f], lags[v, f] = r.mean(), lag_range[j]
    return mean, lags, per_lag


def voice_speaker_turns(
    mouths: np.ndarray,
    voices: np.ndarray,
    silent: np.ndarray,
    evidence: list[Evidence],
    *,
    min_r: float,
    min_turn: int,
    bridge: int,
) -> SpeakerDecision:
    """Who speaks when, from the voices (`voices` (n,): per frame which voice speaks, NO_VOICE in silence, from
    `voices.voice_labels`) and the faces' mouths (faces, n): each voice goes to a different face, the assignment
    under which the faces' mouths follow the audio best over all of their voices' frames (the mean windowed r,
    summed over the `evidence` sources, Hungarian algorithm). A voice no face's mouth follows (mean r under `min_r`
    on average over the sources: someone off screen) is nobody's. Then short silences and turns as in
    `label_frames`. Per frame `scores` is each face's windowed r (mean over the sources) at its voice's lag."""
    mouths = np.asarray(mouths, np.float64)
    voices = np.asarray(voices, np.int64)
    if mouths.ndim != 2 or mouths.shape[1] != len(voices) or len(silent) != len(voices) or not evidence:
        raise ValueError(f"mouths {mouths.shape}, voices {len(voices)} and silent {len(silent)} frames do not match")
    voices = np.where(np.asarray(silent, bool), NO_VOICE, voices)
    faces = len(mouths)
    measured = [voice_face_evidence(mouths, voices, e) for e in evidence]
    total = sum(m for m, _, _ in measured) / len(measured)
    labels = np.full(len(voices), NOBODY, np.int64)
    face_lag = [0] * faces
    chosen = {}
    if total.size:
        rows, cols = linear_sum_assignment(np.where(np.isfinite(total), -total, 1e6))
        chosen = {int(v): int(f) for v, f in zip(rows, cols) if np.isfinite(total[v, f]) and total[v, f] >= min_r}
    for v, f in chosen.items():
        labels[voices == v] = f
        face_lag[f] = int(measured[0][1][v, f])
    labels = label_frames(np.where(np.asarray(silent, bool), NOBODY, labels), min_turn, bridge)
    scores = np.full((faces, len(voices)), 0.0)
    for _, lags, per_lag in measured:
        max_lag = (per_lag.shape[1] - 1) // 2
        for f in range(faces):
            v = next((v for v, g in chosen.items() if g == f), None)
            lag = int(lags[v, f]) if v is not None else 0
            scores[f] += per_lag[f, lag + max_lag]
    scores /= len(measured)
    turns = []
    for a, b, label in label_runs(labels):
        if label >= 0:
            turns.append(Turn(a, b, label, tuple(_mean_finite(scores[f, a:b]) for f in range(faces))))
    voice_faces = tuple(chosen.get(v, NOBODY) for v in range(len(total)))
    evidence_rows = tuple(tuple(float(r) for r in row) for row in total)
    return SpeakerDecision(
        labels, scores, turns, face_lag[0] if faces else 0, tuple(face_lag), voice_faces, evidence_rows
    )


def _mean_finite(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean()) if v.size else float("nan")
