from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

try:
    import resource
except ImportError:  # not POSIX
    resource = None

from apb2face.cli.main import main
from apb2face.data.audio import num_video_frames
from apb2face.data.video import write_video
from tests.data.test_audio import wav_with_header_rate
from tests.inference.helpers import astronaut, grace_hopper, speech, write_wav
from tests.inference.test_faces import png_claiming


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apb2face", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def count_streams(path: Path) -> tuple[int, float, float]:
    """(decoded video frames, video fps, audio duration in seconds) of an MP4."""
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
        rate = c.streams.audio[0].rate
    return frames, fps, samples / rate


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def wav(tmp_path) -> Path:
    audio, sr = speech()
    import soxr

    return write_wav(tmp_path / "speech.ogg", soxr.resample(audio, sr, 22050), 22050)  # not 16 kHz, not WAV


def test_generate_writes_h264_with_aac_as_long_as_the_audio(tiny_checkpoint, wav, tmp_path):
    out = tmp_path / "out.mp4"
    result = run_cli(
        "generate", "--reference", "astronaut", "--audio", wav, "--checkpoint", tiny_checkpoint, "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    audio, sr = speech()
    duration = len(audio) / sr
    frames, fps, audio_seconds = count_streams(out)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 64)
    assert fps == 25
    assert abs(frames - duration * 25) <= 1
    assert abs(audio_seconds - duration) < 0.1


def test_generate_from_photo_text_pose_and_blink(tiny_checkpoint, photo, tmp_path):
    pose = tmp_path / "pose.csv"
    pose.write_text("yaw,pitch,roll\n" + "".join(f"{np.sin(i / 5) * 5:.3f},0,0\n" for i in range(40)))
    blink = tmp_path / "blink.npy"
    np.save(blink, np.tile([[1.0, 1.0]], (40, 1)))
    out = tmp_path / "talk.mp4"
    rc = main(
        [
            "generate",
            "--reference",
            str(photo),
            "--text",
            "One two three.",
            "--pose",
            str(pose),
            "--blink",
            str(blink),
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--size",
            "96",
        ]
    )
    assert rc == 0
    from apb2face.data.synth.speech import synthesize

    expected = num_video_frames(len(synthesize("One two three.").audio), 25)
    frames, fps, _ = count_streams(out)
    assert abs(frames - expected) <= 1 and fps == 25
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (96, 96)


def test_generate_with_driving_video(tiny_checkpoint, tmp_path):
    audio, sr = speech()
    short = write_wav(tmp_path / "a.wav", audio[:sr], sr)
    driving = tmp_path / "driving.mp4"
    write_video(driving, [astronaut()] * 10, fps=25)  # shorter than the audio: the last pose is held
    out = tmp_path / "d.mp4"
    assert (
        main(
            [
                "generate",
                "--reference",
                "mirrored",
                "--audio",
                str(short),
                "--driving",
                str(driving),
                "--checkpoint",
                str(tiny_checkpoint),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert count_streams(out)[0] == 25


def test_identities_lists_names_first(tiny_checkpoint, capsys):
    assert main(["identities", "--checkpoint", str(tiny_checkpoint)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["astronaut", "mirrored"]
    assert all(line.split()[1] == "64x64" for line in lines)


def test_demo_writes_video_and_strip(tiny_checkpoint, tmp_path):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--checkpoint",
                str(tiny_checkpoint),
                "--out",
                str(out),
                "--text",
                "Hello there.",
                "--tile",
                "128",
                "--strip-frames",
                "5",
            ]
        )
        == 0
    )
    frames, fps, audio_seconds = count_streams(out / "demo.mp4")
    assert fps == 25 and frames > 10 and audio_seconds > 0.3
    with av.open(str(out / "demo.mp4")) as c:
        assert c.streams.video[0].width == 2 * 128  # two identities side by side
    strip = cv2.imread(str(out / "demo_strip.png"))
    assert strip.shape[1] == 5 * 64 and strip.shape[0] == 2 * (64 + 28)


# ------------------------------------------------------------------------------------------------------ bad input


def _bad_inputs(tmp: Path, checkpoint: Path) -> dict[str, tuple[list[str], str, str]]:
    """case -> (arguments, the file the message must name, a phrase of the problem)."""
    audio, sr = speech()
    good_wav = write_wav(tmp / "good.wav", audio, sr)
    empty_wav = write_wav(tmp / "empty.wav", np.zeros(0, np.float32), sr)
    text_file = tmp / "notes.txt"
    text_file.write_text("these are not samples\n" * 50)
    png = tmp / "still.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    corrupt_jpg = tmp / "corrupt.jpg"
    corrupt_jpg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200))
    blank = tmp / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), (120, 140, 160), np.uint8))
    truncated = tmp / "truncated"
    shutil.copytree(checkpoint, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    mismatched = tmp / "mismatched"
    shutil.copytree(checkpoint, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["model"]["generator_width"] = 0.5
    (mismatched / "config.json").write_text(json.dumps(config))
    broken_json = tmp / "broken_json"
    shutil.copytree(checkpoint, broken_json)
    (broken_json / "config.json").write_text('{"format": "apb2face-checkpoint", ')
    bad_pose = tmp / "pose.csv"
    bad_pose.write_text("1,2\n3,4\n")
    faceless_video = tmp / "faceless.mp4"
    write_video(faceless_video, [np.full((96, 96, 3), 90, np.uint8)] * 5, fps=25)
    one_hz = wav_with_header_rate(tmp / "one_hz.wav", 1)  # 16 KB that claim to last 8,000 s
    bomb = png_claiming(tmp / "bomb.png", 40000, 40000)
    dot = tmp / "dot.png"
    cv2.imwrite(str(dot), np.zeros((1, 1, 3), np.uint8))
    stranger = tmp / "stranger.jpg"  # a real face, but not one of the tiny checkpoint's people (the astronaut)
    cv2.imwrite(str(stranger), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))

    ok = ["--checkpoint", str(checkpoint)]
    return {
        "missing image": (
            ["--reference", str(tmp / "nobody.jpg"), "--audio", str(good_wav), *ok],
            str(tmp / "nobody.jpg"),
            "file not found",
        ),
        "corrupt image": (
            ["--reference", str(corrupt_jpg), "--audio", str(good_wav), *ok],
            str(corrupt_jpg),
            "cannot read image",
        ),
        "image without a face": (["--reference", str(blank), "--audio", str(good_wav), *ok], str(blank), "no face"),
        "unknown identity": (["--reference", "zelda", "--audio", str(good_wav), *ok], "zelda", "identit"),
        "photo of someone the checkpoint does not know": (
            ["--reference", str(stranger), "--audio", str(good_wav), *ok],
            str(stranger),
            "not one of the checkpoint's people (closest: ",
        ),
        "audio with no samples": (
            ["--reference", "astronaut", "--audio", str(empty_wav), *ok],
            str(empty_wav),
            "no samples",
        ),
        "text file as audio": (["--reference", "astronaut", "--audio", str(text_file), *ok], str(text_file), "audio"),
        "image as audio": (["--reference", "astronaut", "--audio", str(png), *ok], str(png), "audio"),
        "missing audio": (
            ["--reference", "astronaut", "--audio", str(tmp / "gone.wav"), *ok],
            str(tmp / "gone.wav"),
            "not found",
        ),
        "truncated weights": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--checkpoint", str(truncated)],
            str(truncated / "model.safetensors"),
            "corrupt",
        ),
        "weights not matching config.json": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--checkpoint", str(mismatched)],
            str(mismatched / "model.safetensors"),
            "do not match",
        ),
        "config.json not JSON": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--checkpoint", str(broken_json)],
            str(broken_json / "config.json"),
            "JSON",
        ),
        "missing checkpoint": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--checkpoint", str(tmp / "nockpt")],
            str(tmp / "nockpt"),
            "not found",
        ),
        "malformed pose file": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--pose", str(bad_pose), *ok],
            str(bad_pose),
            "expected 3 values",
        ),
        "driving video without a face": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--driving", str(faceless_video), *ok],
            str(faceless_video),
            "no face",
        ),
        "WAV header claiming 1 Hz": (
            ["--reference", "astronaut", "--audio", str(one_hz), *ok],
            str(one_hz),
            "sample rate 1 Hz",
        ),
        "audio longer than --max-seconds": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--max-seconds", "0.5", *ok],
            str(good_wav),
            "raise it with --max-seconds",
        ),
        "PNG header claiming 40000x40000": (
            ["--reference", str(bomb), "--audio", str(good_wav), *ok],
            str(bomb),
            "megapixels",
        ),
        "1x1 reference image": (["--reference", str(dot), "--audio", str(good_wav), *ok], str(dot), "1x1 pixels"),
        "frame rate of 1e9": (
            ["--reference", "astronaut", "--audio", str(good_wav), "--fps", "1e9", *ok],
            "fps",
            "between 1 and 120",
        ),
    }


BAD_CASES = [
    "missing image",
    "corrupt image",
    "image without a face",
    "unknown identity",
    "photo of someone the checkpoint does not know",
    "audio with no samples",
    "text file as audio",
    "image as audio",
    "missing audio",
    "truncated weights",
    "weights not matching config.json",
    "config.json not JSON",
    "missing checkpoint",
    "malformed pose file",
    "driving video without a face",
    "WAV header claiming 1 Hz",
    "audio longer than --max-seconds",
    "frame rate of 1e9",
    "PNG header claiming 40000x40000",
    "1x1 reference image",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_one_line_exit_2_no_output(case, tiny_checkpoint, tmp_path, capfd):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, named, problem = _bad_inputs(inputs, tiny_checkpoint)[case]
    out_dir = tmp_path / "out"
    capfd.readouterr()
    rc = main(["generate", *args, "--out", str(out_dir / "result.mp4")])
    err = capfd.readouterr().err
    # what a terminal shows: a progress bar erased with "\r" before the error does not count as a line
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert rc == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("apb2face generate: error: ") and named in lines[0] and problem in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_face_names_enroll_and_allow_unknown_renders_it(tiny_checkpoint, wav, tmp_path, capfd):
    stranger = tmp_path / "stranger.png"
    cv2.imwrite(str(stranger), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    args = ["generate", "--reference", str(stranger), "--audio", str(wav), "--checkpoint", str(tiny_checkpoint)]
    capfd.readouterr()
    assert main([*args, "--out", str(tmp_path / "refused.mp4")]) == 2
    err = capfd.readouterr().err
    assert "enrol this person first (apb2face enroll, see docs)" in err and "--allow-unknown" in err
    assert not (tmp_path / "refused.mp4").exists()
    out = tmp_path / "anyway.mp4"
    assert main([*args, "--allow-unknown", "--out", str(out)]) == 0
    assert count_streams(out)[0] > 0


def test_bad_input_from_a_fresh_process(tiny_checkpoint, tmp_path):
    """The real entry point: native libraries' log lines must not leak around the one error line."""
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    out = tmp_path / "o.mp4"
    result = run_cli(
        "generate", "--reference", blank, "--text", "Hello.", "--checkpoint", tiny_checkpoint, "--out", out
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"apb2face generate: error: {blank}: no face found in the image"]
    assert not out.exists()


def test_bad_reference_images_from_a_fresh_process_give_no_opencv_warnings(tiny_checkpoint, tmp_path):
    """OpenCV prints its own `[ WARN:0@...]` lines when it reads a bad file; the user must see only the error."""
    truncated = tmp_path / "half.png"
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    truncated.write_bytes(encoded.tobytes()[: len(encoded) // 2])
    for image, problem in ((png_claiming(tmp_path / "bomb.png", 40000, 40000), "megapixels"), (truncated, "corrupt")):
        out = tmp_path / "o.mp4"
        result = run_cli(
            "generate", "--reference", image, "--text", "Hi.", "--checkpoint", tiny_checkpoint, "--out", out
        )
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"apb2face generate: error: {image}: ") and problem in line
        assert not out.exists()


def test_an_output_location_that_refuses_new_files_is_one_line(tiny_checkpoint, capfd):
    """/proc passes the writability check (it exists and, for root, os.access says yes) but creates nothing."""
    capfd.readouterr()
    args = ["--reference", "astronaut", "--text", "Hi.", "--checkpoint", str(tiny_checkpoint)]
    rc = main(["generate", *args, "--out", "/proc/x.mp4"])
    err = capfd.readouterr().err
    lines = [line for line in (part.rsplit("\r", 1)[-1] for part in err.split("\n")) if line.strip()]
    assert rc == 2
    assert lines == [lines[0]] and lines[0].startswith("apb2face generate: error: /proc/x.mp4: "), err


@pytest.mark.skipif(resource is None, reason="needs RLIMIT_FSIZE (POSIX)")
def test_the_disk_filling_up_during_the_write_is_one_line_and_no_file(tiny_checkpoint, tmp_path):
    """A file-size limit makes the writer fail part-way with an OSError, as a full disk does (ENOSPC/EFBIG)."""
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    text = "Hello there, this sentence makes a video larger than the limit."
    result = subprocess.run(
        [sys.executable, "-m", "apb2face", "generate", "--reference", "astronaut", "--text", text]
        + ["--checkpoint", str(tiny_checkpoint), "--size", "256", "--out", str(out)],
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in (part.rsplit("\r", 1)[-1] for part in result.stderr.split("\n")) if line.strip()]
    assert result.returncode == 2, result.stderr
    assert lines == [f"apb2face generate: error: {out}: cannot write the output (File too large)"], result.stderr
    assert not any(out.parent.iterdir())  # neither the video nor its temporary file


def test_unwritable_output_fails_before_any_work(tiny_checkpoint, tmp_path, capfd):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(
        [
            "generate",
            "--reference",
            "astronaut",
            "--text",
            "Hi.",
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(blocker / "out.mp4"),
        ]
    )
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a writable directory" in err[0]


@pytest.mark.real
def test_real_photo_driven_by_a_real_recording(tiny_checkpoint, real_dir, tmp_path):
    """A real portrait photo as reference; a real MPEG-PS clip (mp2 audio, 360x288) as both audio and driving video."""
    clip = real_dir / "grid_bbaf2n.mpg"
    photo = real_dir / "still_celeba_000007_young_man.jpg"
    out = tmp_path / "real.mp4"
    assert (
        main(
            [
                "generate",
                "--reference",
                str(photo),
                "--audio",
                str(clip),
                "--driving",
                str(clip),
                "--checkpoint",
                str(tiny_checkpoint),
                "--allow-unknown",  # the tiny checkpoint's only person is the astronaut
                "--out",
                str(out),
            ]
        )
        == 0
    )
    from apb2face.data.audio import load_audio

    duration = len(load_audio(clip)) / 16000
    frames, fps, audio_seconds = count_streams(out)
    assert abs(frames - duration * 25) <= 1 and abs(audio_seconds - duration) < 0.1
