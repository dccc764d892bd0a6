"""Active-speaker detection (data/prepare/active_speaker.py): pure functions on made-up per-frame signals."""

from __future__ import annotations

import numpy as np
import pytest

from apb2face.data.prepare import active_speaker as asd


def test_windowed_correlation_matches_corrcoef_and_skips_missing_frames() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(200), rng.standard_normal(200)
    y[50:] += 2 * x[50:]
    r = asd.windowed_correlation(x, y, window=40)
    assert abs(r[120] - np.corrcoef(x[100:140], y[100:140])[0, 1]) < 1e-9
    assert r[150] > 0.8 and abs(r[20]) < 0.5
    x[100:140] = np.nan  # a face missing for the whole window: no evidence
    assert np.isnan(asd.windowed_correlation(x, y, window=40)[120])
    assert np.isnan(asd.windowed_correlation(np.ones(50), y[:50], window=20)[25])  # a mouth that never moves


def test_shifted() -> None:
    v = np.arange(5.0)
    assert np.array_equal(asd.shifted(v, 2)[:3], [2, 3, 4]) and np.isnan(asd.shifted(v, 2)[3:]).all()
    assert np.array_equal(asd.shifted(v, -1)[1:], [0, 1, 2, 3]) and np.isnan(asd.shifted(v, -1)[0])


def test_frame_decisions_need_the_margin_and_silence_is_nobody() -> None:
    scores = np.array([[0.6, 0.5, 0.6, 0.05, np.nan], [0.1, 0.45, 0.1, 0.0, 0.4]])
    silent = np.array([False, False, True, False, False])
    got = asd.frame_decisions(scores, silent, margin=0.1, min_r=0.1)
    assert got.tolist() == [0, asd.UNDECIDED, asd.NOBODY, asd.UNDECIDED, 1]


def test_label_frames_fills_gaps_and_drops_short_turns() -> None:
    U, N = asd.UNDECIDED, asd.NOBODY
    d = np.array([0] * 10 + [U] * 4 + [1, 1] + [0] * 10 + [N] * 2 + [0] * 5 + [N] * 8 + [1] * 12)
    labels = asd.label_frames(d, min_turn=5, bridge=3)
    # the 2-frame blip of face 1 inside face 0's talk is not a turn; the 2-frame pause is bridged; 8 silent stay
    assert labels.tolist() == [0] * 33 + [N] * 8 + [1] * 12
    assert asd.label_runs(labels) == [(0, 33, 0), (33, 41, N), (41, 53, 1)]
    lone = asd.label_frames(np.array([N] * 5 + [1] * 3 + [N] * 5), min_turn=5, bridge=2)
    assert (lone == N).all()  # a 3-frame word between silences is nobody's turn


def _talk(n: int, rng: np.random.Generator) -> np.ndarray:
    """A mouth-like signal: syllable bursts at a random rate, smoothed."""
    bursts = (rng.random(n) < 0.25).astype(float)
    return np.convolve(bursts, np.hanning(7), mode="same")


def test_speaker_turns_pick_the_face_that_follows_the_audio() -> None:
    rng = np.random.default_rng(1)
    n, turn = 600, 150  # 24 s at 25 fps, turns of 6 s: A B A B
    mouths = np.stack([_talk(n, rng), _talk(n, rng)])
    truth = np.repeat([0, 1, 0, 1], turn)
    rms = mouths[truth, np.arange(n)] + 0.05 * rng.random(n)
    rms = asd.shifted(rms, -2)  # the audio is 2 frames late
    rms = np.nan_to_num(rms)
    silent = np.zeros(n, bool)
    silent[290:310] = True  # a pause of 0.8 s: the turn B..A boundary is at 300
    got = asd.speaker_turns(mouths, rms, silent, window=50, max_lag=5, margin=0.1, min_r=0.1, min_turn=25, bridge=8)
    assert got.lag == 2
    assert [t.speaker for t in got.turns] == [0, 1, 0, 1]
    assert (got.labels == truth)[~silent].mean() > 0.9
    for t in got.turns:
        assert t.scores[t.speaker] > t.scores[1 - t.speaker] + 0.2


def test_speaker_turns_with_a_missing_face_and_no_speech() -> None:
    rng = np.random.default_rng(2)
    n = 300
    mouths = np.stack([_talk(n, rng), _talk(n, rng)])
    mouths[1, :] = np.nan  # face 1 never seen
    got = asd.speaker_turns(
        mouths, mouths[0].copy(), np.zeros(n, bool), window=50, max_lag=2, margin=0.1, min_r=0.1, min_turn=25, bridge=8
    )
    assert [t.speaker for t in got.turns] == [0] and np.isnan(got.turns[0].scores[1])
    quiet = asd.speaker_turns(
        mouths, np.zeros(n), np.ones(n, bool), window=50, max_lag=2, margin=0.1, min_r=0.1, min_turn=25, bridge=8
    )
    assert quiet.turns == [] and (quiet.labels == asd.NOBODY).all()


def test_high_pass_removes_drift_and_keeps_missing_frames() -> None:
    t = np.arange(200.0)
    fast = np.sin(2 * np.pi * t / 6)  # syllables
    v = fast + 0.01 * t  # a slow drift (a smile growing)
    v[50:55] = np.nan
    out = asd.high_pass(v, 13)
    assert np.isnan(out[50:55]).all() and np.isfinite(out[60:]).all()
    inner = slice(20, 180)
    ok = np.isfinite(out[inner])
    assert abs(np.nanmean(out[inner])) < 0.05  # the drift is gone
    assert np.corrcoef(out[inner][ok], fast[inner][ok])[0, 1] > 0.95


def test_speaker_turns_with_an_expected_mouth_and_a_lag_per_face() -> None:
    rng = np.random.default_rng(3)
    n, turn = 600, 150
    talk = [_talk(n, rng), _talk(n, rng)]  # what each person says, as a mouth opening
    truth = np.repeat([0, 1, 0, 1], turn)
    expected = np.stack(talk)[truth, np.arange(n)]  # the mouth the soundtrack calls for
    # both faces always move (the listener talks to itself); face 0 is a frame early, face 1 3 frames late and smiles
    mouths = np.stack([np.nan_to_num(asd.shifted(talk[0], 1)), np.nan_to_num(asd.shifted(talk[1], -3))])
    mouths[1] += np.linspace(0, 2, n)
    mouths += 0.05 * rng.random((2, n))
    rms = np.ones(n)  # flat loudness: the RMS envelope alone could not tell
    silent = np.zeros(n, bool)
    kw = dict(window=50, max_lag=5, margin=0.1, min_r=0.1, min_turn=25, bridge=8)
    got = asd.speaker_turns(mouths, rms, silent, expected=expected, detrend=13, **kw)
    assert got.lags == (1, -3)
    assert [t.speaker for t in got.turns] == [0, 1, 0, 1]
    assert (got.labels == truth).mean() > 0.9
    loudness = asd.speaker_turns(mouths, rms, silent, **kw)  # a flat envelope cannot tell the turns apart
    assert [t.speaker for t in loudness.turns] != [0, 1, 0, 1]
    with pytest.raises(ValueError, match="expected mouth"):
        asd.speaker_turns(mouths, rms, silent, expected=expected[:-1], **kw)


def test_voice_speaker_turns_give_each_voice_to_the_face_that_follows_it() -> None:
    rng = np.random.default_rng(4)
    n, turn = 600, 100
    talk = [_talk(n, rng), _talk(n, rng), _talk(n, rng)]  # face 0, face 1, and someone off screen
    truth = np.repeat([1, 0, 2, 1, 0, 2], turn)  # who speaks: face 1, face 0, the off-screen voice, ...
    voices = np.repeat([0, 1, 2, 0, 1, 2], turn)  # the voices as diarization numbers them (in order of appearance)
    expected = np.stack(talk)[truth, np.arange(n)]
    # both faces always move; face 0 is 2 frames early; during the off-screen voice neither face follows the audio
    mouths = np.stack([np.nan_to_num(asd.shifted(talk[0], 2)), talk[1].copy()]) + 0.05 * rng.random((2, n))
    silent = np.zeros(n, bool)
    silent[250:260] = True  # a pause inside the off-screen voice's first turn
    voices[silent] = -1
    evidence = [asd.Evidence(expected, window=50, max_lag=4, detrend=13)]
    got = asd.voice_speaker_turns(mouths, voices, silent, evidence, min_r=0.1, min_turn=25, bridge=8)
    assert got.voice_faces == (1, 0, asd.NOBODY)  # the off-screen voice is nobody's: no face is left for it
    assert got.lags == (2, 0)
    want = np.where(truth == 2, asd.NOBODY, truth)
    assert (got.labels == want).all()
    assert [t.speaker for t in got.turns] == [1, 0, 1, 0]
    for t in got.turns:  # the evidence: the speaker's mouth follows its turn, the other's does not
        assert t.scores[t.speaker] > 0.8 and t.scores[t.speaker] > t.scores[1 - t.speaker] + 0.3
    ev = np.array(got.voice_evidence)
    assert ev.shape == (3, 2) and ev[0, 1] > 0.8 and ev[1, 0] > 0.8 and ev[2].max() < 0.3

    # two faces, two voices, one of them followed by no face at all: it stays nobody's by min_r
    two = np.where(voices == 2, 0, voices)
    alone = asd.voice_speaker_turns(mouths[:1], two, silent, evidence, min_r=0.1, min_turn=25, bridge=8)
    assert alone.voice_faces == (asd.NOBODY, 0)
    with pytest.raises(ValueError, match="do not match"):
        asd.voice_speaker_turns(mouths, voices[:-1], silent, evidence, min_r=0.1, min_turn=25, bridge=8)
