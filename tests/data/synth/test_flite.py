"""The second speech engine, CMU Flite: its phone timings, deterministic speech, and the built-in people speaking
through it (`synth --tts flite`). Needs the Debian package `flite` (installed when this runs as root, else skipped)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import face, synth
from apb2face.data.audio import rms_per_frame
from apb2face.data.format import Dataset
from apb2face.data.synth import flite
from apb2face.data.synth.visemes import strip_marks, viseme_tracks
from apb2face.errors import UserError


@pytest.fixture(scope="module")
def flite_installed() -> None:
    """Debian's flite: found, or installed with apt-get when this runs as root; skipped only when neither works."""
    if shutil.which("flite") is None and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "flite"]):
            subprocess.run(command, capture_output=True, timeout=600, check=False)
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed and could not be installed (Debian: apt-get install -y flite)")


def test_segments_become_ipa_onsets():
    onsets = flite.parse_segments("pau:0.220 hh:0.295 aw:0.436 m:0.526 pau:0.700\n")
    assert onsets == [(0.0, ""), (0.22, "h"), (0.295, "aʊ"), (0.436, "m"), (0.526, "")]
    with pytest.raises(ValueError, match="unknown phone"):
        flite.parse_segments("pau:0.1 qq:0.2")
    # every phone Flite can print has a viseme the synthetic mouth knows (a vowel opens the jaw, m closes it)
    jaw, _ = viseme_tracks([(0.0, "m"), (0.2, flite.ARPABET_IPA["aa"]), (0.4, "")], 0.6, 25.0, 15)
    assert jaw[3] < 0.02 < 0.1 < jaw.max()
    assert all(strip_marks(ipa) == ipa for ipa in flite.ARPABET_IPA.values())


def test_speech_is_deterministic_with_phones_in_time(flite_installed):
    a = flite.synthesize("Please bring the blue map.", "rms", f0=120.0, stretch=1.0)
    b = flite.synthesize("Please bring the blue map.", "rms", f0=120.0, stretch=1.0)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.sample_rate == 16000 and np.abs(a.audio).max() == pytest.approx(0.9, abs=1e-3)
    times = [t for t, _ in a.phonemes]
    assert times == sorted(times) and times[-1] < a.duration
    assert [p for _, p in a.phonemes if p][:3] == ["p", "l", "i"]
    slow = flite.synthesize("Please bring the blue map.", "rms", f0=120.0, stretch=1.3)
    assert slow.duration > 1.2 * a.duration
    with pytest.raises(UserError, match="empty"):
        flite.synthesize("  ", "rms")
    with pytest.raises(ValueError, match="unknown flite voice"):
        flite.synthesize("Hello.", "nobody")


def test_the_built_in_people_speak_through_flite_in_sync_and_byte_for_byte(flite_installed, tmp_path: Path):
    config = synth.SynthConfig(identities=2, clips_per_identity=2, size=64, seed=5, workers=1, videos=False)
    espeak = tmp_path / "espeak"
    synth.generate(espeak, config)
    outs = [tmp_path / "flite_a", tmp_path / "flite_b"]
    for out in outs:
        synth.generate(out, synth.SynthConfig(**{**config.__dict__, "tts": "flite"}))
    digests = [
        {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}
        for out in outs
    ]
    assert digests[0] == digests[1]
    ds, other = Dataset(outs[0]), Dataset(espeak)
    mouth, rms = [], []
    for rec, same in zip(ds.clips(), other.clips()):
        clip, espeak_clip = ds.load_clip(rec), other.load_clip(same)
        assert rec.text == same.text  # the same sentences, the same people: another voice
        assert len(clip.audio) != len(espeak_clip.audio) or not np.array_equal(clip.audio, espeak_clip.audio)
        mouth.append([face.mouth_opening(p) for p in clip.landmarks])
        rms.append(rms_per_frame(clip.audio, len(clip.frames), clip.fps))
    assert np.corrcoef(np.concatenate(mouth), np.concatenate(rms))[0, 1] > 0.5
    voices = {json.loads((ds.clip_dir(rec) / "clip.json").read_text())["voice"] for rec in ds.clips()}
    assert voices and voices <= {f"flite:{v}" for v in flite.VOICES}


def test_synth_config_refuses_an_unknown_engine():
    with pytest.raises(ValueError, match="tts"):
        synth.SynthConfig(tts="festival")
