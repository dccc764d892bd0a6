"""`apb2face stream`: a file gives `generate`'s frames, stdin PCM of any length becomes a whole MP4, and bad input
(empty or closed stdin, an output that cannot be created) is one line and exit 2 with nothing written."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from apb2face.cli.main import main
from apb2face.data import audio as A
from apb2face.data.video import iter_frames, probe
from tests.inference.helpers import noise_speech, write_wav

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def s16le(pcm: np.ndarray) -> bytes:
    return np.round(pcm * 32767).astype("<i2").tobytes()


def stream_args(checkpoint: Path) -> list[str]:
    return ["stream", "--checkpoint", str(checkpoint), "--reference", "astronaut"]


def run_with_stdin(argv: list[str], data: bytes, tmp_path: Path, monkeypatch) -> tuple[int, bytes]:
    """main(argv) with `data` as stdin (a real file descriptor, read with os.read as a pipe is) and stdout captured."""
    source = tmp_path / "stdin.raw"
    source.write_bytes(data)
    out = io.BytesIO()
    try:
        with source.open("rb") as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
            code = main(argv)
            sys.stdout.flush()
    finally:
        source.unlink()
    return code, out.getvalue()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_file_equals_generate(tiny_checkpoint, tmp_path, capsys):
    wav = write_wav(tmp_path / "speech.wav", noise_speech(1.6), 16000)
    args = ["--checkpoint", str(tiny_checkpoint), "--reference", "astronaut", "--seed", "4"]
    assert main(["stream", *args, "--audio-in", str(wav), "--out", str(tmp_path / "s.mp4")]) == 0
    assert "repeated" not in capsys.readouterr().err  # a file fed as fast as possible renders every frame
    assert main(["generate", *args, "--audio", str(wav), "--out", str(tmp_path / "g.mp4"), "--batch-size", "1"]) == 0
    s_info, g_info = probe(tmp_path / "s.mp4"), probe(tmp_path / "g.mp4")
    assert s_info.num_frames == g_info.num_frames == 40 and s_info.has_audio
    assert abs(s_info.duration - g_info.duration) < 0.05
    s_frames = np.stack([f for _t, f in iter_frames(tmp_path / "s.mp4")]).astype(int)
    g_frames = np.stack([f for _t, f in iter_frames(tmp_path / "g.mp4")]).astype(int)
    assert np.array_equal(s_frames, g_frames)  # same frames in, same encoder settings: same decoded pixels


def test_stdin_raw_pcm_to_mp4_and_to_stdout(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    pcm = s16le(noise_speech(1.0))
    out = tmp_path / "live.mp4"
    argv = [*stream_args(tiny_checkpoint), "--audio-in", "-"]
    code, _ = run_with_stdin([*argv, "--out", str(out), "--chunk-ms", "30"], pcm, tmp_path, monkeypatch)
    assert code == 0
    # stdin is a live source: the session repeats frames rather than fall behind, and the summary counts them
    assert "frames repeated to keep up, in " in capsys.readouterr().err
    info = probe(out)
    assert info.num_frames == 25 and info.has_audio and abs(info.duration - 1.0) < 0.05
    code, raw = run_with_stdin([*argv, "--out", "-"], pcm[:-1], tmp_path, monkeypatch)  # an odd byte count is fine
    assert code == 0 and len(raw) == 25 * 64 * 64 * 3


def test_stdin_length_that_used_to_lose_the_recording(tiny_checkpoint, tmp_path, monkeypatch):
    # 57,014 samples in 20 ms chunks: untimestamped audio chunks made the muxer fail on close (the MP4 was lost)
    samples = 57014
    out = tmp_path / "live.mp4"
    argv = [*stream_args(tiny_checkpoint), "--audio-in", "-", "--out", str(out)]
    code, _ = run_with_stdin(argv, s16le(noise_speech(4.0))[: 2 * samples], tmp_path, monkeypatch)
    assert code == 0
    info = probe(out)
    assert info.has_audio and info.num_frames == A.num_video_frames(samples, 25.0)
    assert abs(info.duration - samples / 16000) < 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]


@pytest.mark.parametrize("out", ["live.mp4", "-"])
def test_empty_stdin_is_refused_and_nothing_written(tiny_checkpoint, tmp_path, monkeypatch, capsys, out):
    os.chdir(tmp_path)
    code, raw = run_with_stdin(
        [*stream_args(tiny_checkpoint), "--audio-in", "-", "--out", out], b"", tmp_path, monkeypatch
    )
    assert code == 2 and raw == b""
    assert "stdin: no audio received" in one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_closed_stdin_is_refused(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    os.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed file descriptor 0 (`... <&-`)
    assert main([*stream_args(tiny_checkpoint), "--audio-in", "-", "--out", "live.mp4"]) == 2
    assert "stdin is closed" in one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_output_that_cannot_be_created_fails_before_reading_audio(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    # /proc passes a permission check as root but takes no new files; the stream must not run first. The audio on
    # stdin is empty, which would be refused too: the output's error comes first, so it was found before the stream
    argv = [*stream_args(tiny_checkpoint), "--audio-in", "-", "--out", "/proc/apb2face-test.mp4"]
    code, _ = run_with_stdin(argv, b"", tmp_path, monkeypatch)
    assert code == 2
    err = one_line_error(capsys)
    assert "/proc/apb2face-test.mp4" in err and "cannot create" in err


def test_output_folder_is_refused_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "taken.mp4").mkdir()
    argv = ["stream", "--checkpoint", str(tmp_path / "no-such-checkpoint"), "--reference", "x", "--audio-in", "-"]
    assert main([*argv, "--out", str(tmp_path / "taken.mp4")]) == 2
    assert "output is a directory" in one_line_error(capsys)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--audio-in", "missing.wav", "--out", "x.mp4"], "file not found"),
        (["--audio-in", "-", "--out", "x.avi"], ".mp4"),
        (["--audio-in", "-", "--int8"], "--backend onnx"),
        (["--audio-in", "-", "--realtime"], "--realtime"),
        (["--audio-in", "-", "--out", "x.mp4", "--fps", "1e9"], "fps must be between"),
    ],
)
def test_bad_input(tiny_checkpoint, tmp_path, capsys, extra, message):
    os.chdir(tmp_path)
    assert main([*stream_args(tiny_checkpoint), *extra]) == 2
    assert message in one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_unknown_face_is_refused_unless_allow_unknown(tiny_checkpoint, tmp_path, capsys):
    import cv2

    from tests.inference.helpers import grace_hopper

    stranger = tmp_path / "stranger.png"
    cv2.imwrite(str(stranger), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    wav = write_wav(tmp_path / "speech.wav", noise_speech(0.8), 16000)
    args = ["stream", "--checkpoint", str(tiny_checkpoint), "--reference", str(stranger), "--audio-in", str(wav)]
    assert main([*args, "--out", str(tmp_path / "a.mp4")]) == 2
    assert "apb2face enroll" in one_line_error(capsys) and not (tmp_path / "a.mp4").exists()
    assert main([*args, "--out", str(tmp_path / "b.mp4"), "--allow-unknown"]) == 0
    assert probe(tmp_path / "b.mp4").num_frames == 20


# ------------------------------------------------------------------------------------------------- --full-frame


def test_full_frame_streams_over_the_avatar_loop(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """A built-in person's avatar loop (made from the checkpoint's synth recipe into the cache): the MP4 has the
    loop's size, one frame per 40 ms of audio, and the summary gives the paste cost."""
    from tests.inference.test_avatar import builtin_checkpoint

    monkeypatch.setenv("APB2FACE_CACHE", str(tmp_path / "cache"))
    checkpoint = builtin_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    wav = write_wav(tmp_path / "speech.wav", noise_speech(1.2), 16000)
    out = tmp_path / "full.mp4"
    argv = ["stream", "--checkpoint", str(checkpoint), "--reference", "id00", "--audio-in", str(wav)]
    assert main([*argv, "--full-frame", "--region", "mouth", "--out", str(out)]) == 0
    assert "256x256 full frames, paste " in capsys.readouterr().err
    info = probe(out)
    assert (info.width, info.height, info.num_frames) == (256, 256, 30) and info.has_audio


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--region", "mouth"], "--region needs --full-frame"),
        (["--full-frame", "--pose", "pose.csv"], "--pose and --blink cannot be used with --full-frame"),
        (["--full-frame"], "has no avatar clip"),  # the tiny checkpoint has no avatars/ and no synth recipe
    ],
)
def test_full_frame_bad_input(tiny_checkpoint, tmp_path, capsys, extra, message):
    os.chdir(tmp_path)
    wav = write_wav(tmp_path / "speech.wav", noise_speech(0.5), 16000)
    assert main([*stream_args(tiny_checkpoint), "--audio-in", str(wav), "--out", "x.mp4", *extra]) == 2
    assert message in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav"]
