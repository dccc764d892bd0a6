"""`apb2face generate --full-frame`: a video re-voiced at its own size and rate; flags that do not go together and
videos without a face end in one line and exit code 2, with no output file."""

from __future__ import annotations

from pathlib import Path

import pytest

from apb2face.cli.main import main
from apb2face.data.video import probe
from tests.data.helpers import write_test_video
from tests.inference.helpers import speech, write_wav
from tests.inference.test_revoice import background, face_frames


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("full_frame")
    audio, rate = speech()
    return write_test_video(folder / "talk.mp4", face_frames(25)), write_wav(folder / "new.wav", audio, rate)


def test_full_frame_writes_the_video_at_its_own_size(tiny_checkpoint: Path, inputs, tmp_path: Path) -> None:
    video, wav = inputs
    out = tmp_path / "dubbed.mp4"
    args = ["--reference", "astronaut", "--driving", str(video), "--audio", str(wav), "--full-frame"]
    rc = main(["generate", *args, "--region", "mouth", "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    info = probe(out)
    assert rc == 0 and (info.width, info.height) == (320, 240) and info.fps == 25.0 and info.has_audio


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "mouth"], "--region and --mix need --full-frame"),
        (["--mix"], "--region and --mix need --full-frame"),
        (["--full-frame", "--size", "256"], "--size cannot be used with --full-frame"),
    ],
)
def test_flags_that_do_not_go_together(
    tiny_checkpoint: Path, inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    video, wav = inputs
    out = tmp_path / "out.mp4"
    args = ["--reference", "astronaut", "--driving", str(video), "--audio", str(wav), *extra]
    rc = main(["generate", *args, "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0] and not out.exists()


def test_full_frame_without_a_driving_video_needs_an_avatar(tiny_checkpoint: Path, inputs, tmp_path: Path, capsys):
    import cv2

    from tests.inference.helpers import astronaut

    _video, wav = inputs
    out, photo = tmp_path / "out.mp4", tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    rc = main(["generate", "--reference", str(photo), "--audio", str(wav), "--full-frame", "--out", str(out)])
    assert rc == 2 and "--reference NAME" in capsys.readouterr().err and not out.exists()
    # an identity without avatars/NAME.mp4 in a checkpoint whose meta.replay has no recipe that renders it
    args = ["--reference", "astronaut", "--audio", str(wav), "--full-frame", "--checkpoint", str(tiny_checkpoint)]
    rc = main(["generate", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "has no avatar clip" in err and err.count("\n") == 1 and not out.exists()


def test_an_avatar_loop_renders_any_speech_over_the_identity_clip(
    tiny_checkpoint: Path, inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identity's avatars/NAME.mp4: speech longer than the clip plays it forward and back at its own size, and
    the clip's face track is measured once (cached), then read back for the next call."""
    import json
    import shutil

    monkeypatch.setenv("APB2FACE_CACHE", str(tmp_path / "cache"))
    video, wav = inputs
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, checkpoint)
    name = json.loads((checkpoint / "config.json").read_text())["identities"][0]
    (checkpoint / "avatars").mkdir()
    shutil.copy(video, checkpoint / "avatars" / f"{name}.mp4")  # 1 s of a face; the speech is longer
    for k in (1, 2):
        out = tmp_path / f"avatar{k}.mp4"
        args = ["--reference", name, "--audio", str(wav), "--full-frame", "--checkpoint", str(checkpoint)]
        rc = main(["generate", *args, "--out", str(out)])
        info = probe(out)
        assert rc == 0 and (info.width, info.height) == (320, 240) and info.has_audio
        assert len(list((tmp_path / "cache" / "tracks").glob("*.npz"))) == 1


def test_a_video_without_a_face_is_one_line(tiny_checkpoint: Path, inputs, tmp_path: Path, capsys) -> None:
    _video, wav = inputs
    empty = write_test_video(tmp_path / "empty.mp4", [background()] * 8)
    out = tmp_path / "out.mp4"
    args = ["--reference", "astronaut", "--driving", str(empty), "--audio", str(wav), "--full-frame"]
    rc = main(["generate", *args, "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no face found in any frame" in err[0] and str(empty) in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_a_built_in_person_talks_over_their_avatar_loop_and_rests_in_silence(tmp_path: Path, monkeypatch) -> None:
    """`generate --checkpoint <demo> --reference id01 --audio X --full-frame` with no --driving: the loop is made from
    the demo checkpoint's synth recipe, and over 3 s of silence between two sentences the mouth, as the face mesh
    reads it off the output, is closed and still compared with the speech."""
    import numpy as np

    from apb2face.data import audio as A
    from apb2face.data.synth.speech import synthesize
    from apb2face.data.video import iter_frames
    from apb2face.evaluation.face_measure import measure_face_mesh
    from apb2face.inference.pipeline import default_checkpoint

    monkeypatch.setenv("APB2FACE_CACHE", str(tmp_path / "cache"))
    speech = synthesize("Hello there, how are you doing today?").audio
    pcm = np.concatenate([speech, np.zeros(3 * A.SAMPLE_RATE, np.float32), speech])
    wav = write_wav(tmp_path / "talk.wav", pcm, A.SAMPLE_RATE)
    out = tmp_path / "o.mp4"
    args = ["--checkpoint", str(default_checkpoint()), "--reference", "id01", "--audio", str(wav), "--full-frame"]
    assert main(["generate", *args, "--out", str(out)]) == 0
    info = probe(out)
    assert (info.width, info.height) == (256, 256) and info.has_audio
    frames = np.stack([f for _t, f in iter_frames(out)])
    mouth = measure_face_mesh(frames, video=True).mouth
    t = np.arange(len(frames)) / info.fps
    first = len(speech) / A.SAMPLE_RATE
    # the audio window reaches 0.52 s back and 0.12 s ahead of a frame: these frames hear only silence
    quiet, talk = mouth[(t > first + 0.6) & (t < first + 2.8)], mouth[(t > 0.3) & (t < first)]
    assert np.isfinite(quiet).all() and np.isfinite(talk).mean() > 0.9
    talk = talk[np.isfinite(talk)]
    assert np.median(quiet) < 0.6 * np.median(talk), (np.median(quiet), np.median(talk))
    assert np.percentile(quiet, 95) < 0.6 * np.percentile(talk, 95)
    assert np.std(quiet) < 0.025
