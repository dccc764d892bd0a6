"""`apb2face enroll`: a real enrolment end to end (a portrait video, the demo checkpoint as base, a small replay set),
an exact resume after Ctrl-C, and every bad input as one line with exit 2."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import av
import numpy as np
import pytest

from apb2face.cli.main import main
from apb2face.data.synth import SynthConfig, generate
from apb2face.inference.pipeline import default_checkpoint
from tests.data.helpers import face_frames, speechy, talking_video, write_test_video

QUICK = ("--steps", "2", "min_train_seconds=2", "drift_frames_per_clip=8", "sample_seconds=2")


@pytest.fixture(scope="module")
def replay_data(tmp_path_factory) -> Path:
    """Two built-in people at the demo checkpoint's size, standing in for its replayed data."""
    out = tmp_path_factory.mktemp("replay") / "builtin"
    generate(out, SynthConfig(identities=2, clips_per_identity=2, size=128, seed=0, workers=1, videos=False))
    return out


@pytest.fixture(scope="module")
def anna_video(tmp_path_factory) -> Path:
    return talking_video(tmp_path_factory.mktemp("videos") / "anna.mp4", seconds=6.0)


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def enroll(*args: str | Path) -> int:
    return main(["enroll", *map(str, args)])


def test_enrols_a_person_and_keeps_everyone_the_base_had(tmp_path, anna_video, replay_data, capsys):
    base = default_checkpoint()
    before = tree_digest(base)
    no_face = write_test_video(tmp_path / "wall.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 30)
    out = tmp_path / "ckpt"
    code = enroll(
        anna_video, no_face, "--name", "anna", "--name", "wall", "--out", out, "--base-data", replay_data, *QUICK
    )
    captured = capsys.readouterr()
    assert code == 1  # one video refused, the other enrolled
    assert "not enrolled" in captured.err and "wall.mp4" in captured.err
    assert "enrolled anna" in captured.out
    assert tree_digest(base) == before  # the base is only read
    assert not (tmp_path / "ckpt.enroll-work").exists()

    config = json.loads((out / "config.json").read_text())
    assert set(config["identities"]) == {"anna", "id00", "id01", "id02", "id03", "id04", "id05"}
    assert {"dataset": "data/anna"} in config["meta"]["replay"]
    assert (out / "data" / "anna" / "dataset.json").is_file()
    summary = json.loads((out / "enrollment.json").read_text())
    assert summary["people"] == ["anna"] and summary["training"]["steps"] == 2
    measured = summary["measured"]
    assert 0 < measured["new"]["ssim"]["mean"] < 1 and measured["protocol"]["frames"] > 0
    assert set(measured["drift"]) == {"id00", "id01"}
    card = (out / "README.md").read_text()
    assert "anna" in card and "real footage" in card and "SSIM" in card
    # where lip sync is lost: the fuser's predicted mouth against the audio, beside the real footage's landmarks
    assert "lip-sync r of the fuser's mouth" in card and set(measured["new"]["lipsync_corr_geometry"]) == {
        "mean",
        "per_identity",
    }
    assert (out / "strips" / "anna.png").stat().st_size > 1000
    with av.open(str(out / "sample.mp4")) as container:
        assert container.streams.video and container.streams.audio
    with av.open(str(out / "avatars" / "anna.mp4")) as container:  # the start of the video, at its own size
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (320, 240) and stream.frames > 100


@pytest.mark.slow
def test_an_enrolled_checkpoint_is_a_base_for_the_next_enrolment(tmp_path, anna_video, replay_data):
    """Its own people are replayed from the data shipped inside it, and their avatar loops travel on."""
    assert enroll(anna_video, "--name", "anna", "--out", tmp_path / "ckpt", "--base-data", replay_data, *QUICK) == 0
    assert enroll(anna_video, "--name", "anna2", "--out", tmp_path / "ckpt2", "--base", tmp_path / "ckpt", *QUICK) == 0
    chained = json.loads((tmp_path / "ckpt2" / "config.json").read_text())
    assert {"anna", "anna2"} <= set(chained["identities"])
    assert {"dataset": "data/anna"} in chained["meta"]["replay"] and {"dataset": "data/anna2"} in chained["meta"][
        "replay"
    ]
    assert {"anna.mp4", "anna2.mp4"} <= {p.name for p in (tmp_path / "ckpt2" / "avatars").iterdir()}


@pytest.mark.slow
def test_ctrl_c_then_resume_ends_exactly_as_an_unbroken_enrolment(tmp_path, anna_video, replay_data, monkeypatch):
    from apb2face.training.trainer import Trainer

    args = ("--name", "anna", "--base-data", replay_data, "--steps", "4", "min_train_seconds=2", "fit_until_step=2")
    assert enroll(anna_video, "--out", tmp_path / "unbroken", *args) == 0

    step = Trainer.train_step

    def interrupted_at_step_2(self, batch):  # noqa: ANN001, ANN202
        if self.step == 2:
            signal.raise_signal(signal.SIGINT)  # the real Ctrl-C path: the trainer stops after this step
        return step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_step_2)
    assert enroll(anna_video, "--out", tmp_path / "resumed", *args) == 130
    assert (tmp_path / "resumed.enroll-work").is_dir() and not (tmp_path / "resumed").exists()
    monkeypatch.setattr(Trainer, "train_step", step)
    assert enroll(anna_video, "--out", tmp_path / "resumed", *args, "--resume") == 0
    a = (tmp_path / "unbroken" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "resumed" / "model.safetensors").read_bytes()


def _one_line_exit_2(capsys, *args: str | Path) -> str:
    assert enroll(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_bad_names_and_outputs_are_one_line(tmp_path, anna_video, capsys):
    out = tmp_path / "ckpt"
    assert "person name" in _one_line_exit_2(capsys, anna_video, "--name", "", "--out", out)
    assert "person name" in _one_line_exit_2(capsys, anna_video, "--name", "a/b", "--out", out)
    assert "name the person" in _one_line_exit_2(capsys, anna_video, "--out", out)
    # several names for one video name the people in it, left to right: this video has one face
    err = _one_line_exit_2(capsys, anna_video, "--name", "a", "--name", "b", "--name", "c", "--out", out)
    assert "found 1 face, but 3 names were given (a, b, c)" in err and "anna.mp4" in err
    assert not out.exists() and not (tmp_path / "ckpt.enroll-work").exists()
    assert "one per video" in _one_line_exit_2(
        capsys, anna_video, anna_video.with_name("nope.mp4"), "--name", "a", "--name", "b", "--name", "c", "--out", out
    )
    assert "already has id00" in _one_line_exit_2(capsys, anna_video, "--name", "id00", "--out", out)
    assert "nothing to resume" in _one_line_exit_2(capsys, anna_video, "--name", "anna", "--out", out, "--resume")
    out.mkdir()
    assert "output exists" in _one_line_exit_2(capsys, anna_video, "--name", "anna", "--out", out)


def test_footage_that_cannot_teach_is_refused_with_the_reason(tmp_path, replay_data, capsys):
    short = talking_video(tmp_path / "short.mp4", seconds=3.0)
    err = _one_line_exit_2(capsys, short, "--name", "anna", "--out", tmp_path / "a", "--base-data", replay_data)
    assert "too short" in err and "need at least 19 s" in err and "short.mp4" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.enroll-work").exists()

    # two people taking turns: 4 s of one portrait, then 4 s of another
    frames = face_frames(100, which="astronaut") + face_frames(100, which="grace_hopper")
    turns = write_test_video(tmp_path / "interview.mp4", frames, audio=speechy(8.0, 16000), audio_rate=16000)
    args = ("--name", "anna", "--out", tmp_path / "b", "--base-data", replay_data, "min_train_seconds=2")
    err = _one_line_exit_2(capsys, turns, *args)
    assert "two different people" in err and "interview.mp4" in err


def test_enrols_a_person_from_one_photo(tmp_path, replay_data, capsys):
    """One portrait becomes a talking, blinking, turning person (the built-in renderer, the photo as texture): the
    enrolled data says so, holds out the last sentences, and the card says the data was rendered from a photo."""
    import cv2

    from apb2face.data.format import Dataset
    from tests.data.helpers import portrait

    photo = tmp_path / "grace.png"
    cv2.imwrite(str(photo), cv2.cvtColor(portrait("grace_hopper"), cv2.COLOR_RGB2BGR))
    out = tmp_path / "ckpt"
    args = ("--name", "grace", "--out", out, "--base-data", replay_data, "--steps", "1", "photo_clips=5")
    assert enroll(photo, *args, "drift_frames_per_clip=8", "sample_seconds=2") == 0
    data = Dataset(out / "data" / "grace")
    assert len(data.clips("train")) == 4 and len(data.clips("test")) == 1
    assert "one photo" in data.meta.source
    eyes = np.concatenate([data.load_clip(r).eyes for r in data.clips("train")])
    assert eyes.min() < 0.3 < eyes.max()  # the rendered person blinks
    assert "rendered from one photo" in (out / "README.md").read_text()
    capsys.readouterr()
    photo.write_bytes(b"not an image")
    assert enroll(photo, *args[:2], "--out", tmp_path / "x", "--base-data", replay_data) == 2
    assert "grace.png" in capsys.readouterr().err
