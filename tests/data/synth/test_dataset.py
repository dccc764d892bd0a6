"""The built-in dataset: layout, truth that matches the pictures, lip sync, pose and blinks independent of the audio,
and the same bytes for the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import face, synth
from apb2face.data.audio import rms_per_frame
from apb2face.data.format import Dataset
from apb2face.data.video import probe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    synth.generate(out, synth.SynthConfig(identities=2, clips_per_identity=3, size=96, seed=5, workers=1))
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apb2face", "synth", *args], capture_output=True, text=True, timeout=300
    )


def test_layout_and_ground_truth(tiny: Path) -> None:
    ds = Dataset(tiny)
    assert ds.identities == ["id00", "id01"] and len(ds.clips()) == 6
    assert ds.meta.image_size == 96 and ds.meta.fps == 25.0 and ds.meta.sample_rate == 16000
    assert set(ds.meta.splits) == {"train", "test"} and all(ds.clips("test", identity=i) for i in ds.identities)
    texts = {c.text for c in ds.clips()}
    assert len(texts) == 6  # every clip a different sentence
    for rec in ds.clips():
        clip = ds.load_clip(rec)
        n = len(clip.frames)
        assert abs(n / 25.0 - len(clip.audio) / 16000) <= 1 / 25.0
        assert clip.landmarks.shape == (n, 478, 2) and 0 <= clip.landmarks.min() and clip.landmarks.max() <= 1
        assert np.all(np.abs(clip.pose) <= np.array([15.0, 8.0, 6.0]) + 1e-3)
        assert clip.eyes.min() >= 0 and clip.eyes.max() <= 1
        info = probe(tiny / "videos" / rec.identity / f"{rec.name}.mp4")
        assert info.has_audio and info.width == 96 and abs(info.fps - 25) < 1e-6
    assert (tiny / "contact_sheet.png").is_file() and (tiny / "identities.json").is_file()


def test_blinks_close_the_eyes_in_the_truth(tiny: Path) -> None:
    ds = Dataset(tiny)
    eyes = np.concatenate([ds.load_clip(r).eyes for r in ds.clips()])
    lms = np.concatenate([ds.load_clip(r).landmarks for r in ds.clips()])
    assert eyes.min() < 0.2 and np.median(eyes) == 1.0
    ear = np.array([face.eye_aspect_ratios(p) for p in lms])
    closed, open_ = eyes[:, 0] < 0.2, eyes[:, 0] > 0.99
    assert ear[closed, 0].mean() < 0.4 * ear[open_, 0].mean()  # the lids really meet in the landmarks


def test_mouth_opening_follows_speech_energy(tiny: Path) -> None:
    ds = Dataset(tiny)
    mouth, rms = [], []
    for rec in ds.clips():
        clip = ds.load_clip(rec)
        mouth.append([face.mouth_opening(p) for p in clip.landmarks])
        rms.append(rms_per_frame(clip.audio, len(clip.frames), clip.fps))
    r = np.corrcoef(np.concatenate(mouth), np.concatenate(rms))[0, 1]
    assert r > 0.5, r
    # silence at the start and end rests the mouth closed
    assert max(m[0] for m in mouth) < 0.03 and max(m[-1] for m in mouth) < 0.03


def test_pose_and_blinks_do_not_depend_on_the_audio(tiny: Path) -> None:
    # structurally: the schedules come from their own random streams; another sentence changes nothing
    specs = synth.identity_specs(1, 5)
    model = synth.build_identity(specs[0], 64)
    a = synth.render_clip(model, specs[0], synth.ClipJob(0, 0, "Short one.", 5))
    b = synth.render_clip(model, specs[0], synth.ClipJob(0, 0, "A much longer and different sentence here.", 5))
    n = min(len(a.pose), len(b.pose))
    np.testing.assert_array_equal(a.pose[:n], b.pose[:n])
    np.testing.assert_array_equal(a.eyes[:n], b.eyes[:n])
    assert not np.array_equal(a.jaw[:n], b.jaw[:n])
    # statistically on the dataset: no linear relation with the speech energy
    ds = Dataset(tiny)
    clips = [ds.load_clip(r) for r in ds.clips()]
    rms = np.concatenate([rms_per_frame(c.audio, len(c.frames), c.fps) for c in clips])
    pose = np.concatenate([c.pose for c in clips])
    eyes = np.concatenate([c.eyes for c in clips])
    for series in (*pose.T, np.abs(pose[:, 0]), eyes[:, 0]):
        assert abs(np.corrcoef(series, rms)[0, 1]) < 0.35


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers_and_the_time(tmp_path: Path) -> None:
    """Every file, audio and MP4s included, for two seeds whose people speak with several voice variants, two of
    them breathy (espeak-ng seeds their noise from the clock; the runs are seconds apart)."""
    runs: dict[int, list[dict[str, bytes]]] = {}
    for seed in (5, 10):
        voices = {spec.voice.split("+")[1] for spec in synth.identity_specs(3, seed)}
        assert {"f3", "f5"} <= voices and voices & {"m2"}  # breathy and plain variants
        for workers in ("1", "2"):
            out = tmp_path / f"seed{seed}_workers{workers}"
            flags = ("--identities", "3", "--clips-per-identity", "1", "--size", "64", "--seed", str(seed))
            res = _cli(str(out), *flags, "--workers", workers)
            assert res.returncode == 0, res.stderr[-2000:]
            runs.setdefault(seed, []).append(_files(out))
    for seed, (first, second) in runs.items():
        assert first.keys() == second.keys() and "dataset.json" in first
        assert sum(k.endswith(".mp4") for k in first) == 3 and sum(k.endswith("audio.wav") for k in first) == 3
        for key in first:
            assert first[key] == second[key], (seed, key)
    assert runs[5][0]["clips/id00/clip000/frames.npy"] != runs[10][0]["clips/id00/clip000/frames.npy"]
