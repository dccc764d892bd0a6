from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import apb2face
from apb2face.cli.main import build_parser
from apb2face.data import audio as A
from apb2face.data.audio import num_video_frames
from apb2face.data.face import FaceMesh
from apb2face.errors import UserError
from apb2face.inference.faces import align_face
from apb2face.inference.limits import DEFAULT_MAX_SECONDS
from apb2face.inference.motion import DEFAULT_SEED, blink_events
from apb2face.inference.pipeline import (
    MAX_CENTRE_POSE_DEG,
    SHIPPED_CHECKPOINTS,
    APB2FacePipeline,
    ReferenceState,
    default_checkpoint,
    resolve_checkpoint,
    shipped_checkpoint,
)
from apb2face.inference.streaming import StreamingSession
from tests.inference.helpers import astronaut, grace_hopper, speech, write_wav

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return APB2FacePipeline.from_pretrained(tiny_checkpoint)


def test_identities_and_size(pipe):
    assert pipe.identities == ["astronaut", "mirrored"]
    assert pipe.image_size == 64


def test_identity_with_speech_array(pipe):
    audio, sr = speech()
    out = pipe("astronaut", audio, sample_rate=sr, seed=0, batch_size=7)
    n = num_video_frames(len(audio), 25, sr)
    assert abs(n - len(audio) / sr * 25) <= 1
    assert out.frames.shape == (n, 64, 64, 3) and out.frames.dtype == np.uint8
    assert out.landmarks.shape == (n, pipe.config.num_landmarks, 2)
    assert out.pose.shape == (n, 3) and out.eyes.shape == (n, 2)
    assert out.fps == 25 and out.sample_rate == sr and len(out.audio) == len(audio)
    assert out.frames.std() > 1  # a real image, not a constant
    # the same seed gives the same video; batch size does not change the result
    again = pipe("astronaut", audio, sample_rate=sr, seed=0, batch_size=16)
    np.testing.assert_array_equal(out.frames, again.frames)


def test_natural_motion_drives_the_model(pipe):
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(4 * sr) / sr)).astype(np.float32)  # content is irrelevant
    out = pipe("mirrored", tone, sample_rate=sr, seed=5)
    assert len(out.frames) == 100
    assert len(blink_events(out.eyes, 25)) >= 1
    assert (out.pose.std(axis=0) > 0.1).all()


def test_photo_of_any_size_is_cropped_like_the_dataset(pipe, tmp_path):
    reference, _ = align_face(astronaut(), 64)
    # a smaller, non-square version of the same photo with the face off-centre
    small = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 420, 3), 200, np.uint8)
    canvas[30:286, 140:396] = small
    crop, pose = align_face(canvas, 64)
    # same framing: the face's landmarks sit at the same place in both crops (within ~1 px of 64) ...
    with FaceMesh() as mesh:
        where = [
            mesh.detect(cv2.resize(c, (256, 256), interpolation=cv2.INTER_CUBIC))[:, :2] / 256
            for c in (reference, crop)
        ]
    assert np.linalg.norm(where[0] - where[1], axis=1).mean() < 0.035
    # ... and the same picture (blurred, so that a sub-pixel shift does not count; a mirrored crop scores ~47)
    blur = [cv2.GaussianBlur(c.astype(np.float32), (0, 0), 2) for c in (reference, crop)]
    assert np.abs(blur[0] - blur[1]).mean() < 25
    assert all(abs(v) < 45 for v in pose)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    state = pipe.prepare_reference(path)
    assert state.crop.shape == (64, 64, 3) and state.name == "photo"
    assert np.abs(state.crop.astype(int) - crop.astype(int)).mean() < 6  # JPEG round trip only


def test_reference_is_encoded_once(pipe, tiny_checkpoint):
    fresh = APB2FacePipeline.from_pretrained(tiny_checkpoint)
    calls = []
    original = fresh.model.encode_reference
    fresh.model.encode_reference = lambda x: calls.append(1) or original(x)
    audio, sr = speech()
    for _ in range(3):
        fresh("astronaut", audio[:sr], sample_rate=sr)
    fresh(astronaut(), audio[:sr], sample_rate=sr)
    fresh(astronaut().copy(), audio[:sr], sample_rate=sr)
    assert len(calls) == 2


def test_audio_file_any_rate_and_channels(pipe, tmp_path):
    audio, sr = speech()
    import soxr

    stereo = np.stack([soxr.resample(audio, sr, 44100)] * 2, axis=1)
    path = write_wav(tmp_path / "speech.flac", stereo, 44100)
    out = pipe("astronaut", path, seed=1)
    assert abs(len(out.frames) - len(audio) / sr * 25) <= 1
    assert out.sample_rate == 48000 and abs(len(out.audio) / 48000 - len(audio) / sr) < 0.01


def test_given_pose_and_eyes_are_used(pipe, tmp_path):
    audio, sr = speech()
    n = num_video_frames(len(audio), 25, sr)
    pose = np.column_stack([np.linspace(-10, 10, n), np.zeros(n), np.zeros(n)])
    eyes_file = tmp_path / "blink.csv"
    eyes_file.write_text("left,right\n" + "0.2,0.3\n" * 10)  # shorter than the audio: held
    out = pipe("astronaut", audio, sample_rate=sr, pose=pose, eyes=eyes_file)
    np.testing.assert_allclose(out.pose, pose, atol=1e-5)
    np.testing.assert_allclose(out.eyes, np.tile([0.2, 0.3], (n, 1)), atol=1e-6)


def test_bad_references_and_audio(pipe, tmp_path):
    audio, sr = speech()
    with pytest.raises(UserError, match="nor an identity"):
        pipe("nobody", audio, sample_rate=sr)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(UserError, match="no face") as err:
        pipe(blank, audio, sample_rate=sr)
    assert str(blank) in str(err.value)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UserError, match="cannot read image"):
        pipe(corrupt, audio, sample_rate=sr)
    with pytest.raises(UserError, match="non-empty"):
        pipe("astronaut", np.zeros(0, np.float32), sample_rate=sr)
    with pytest.raises(UserError, match="sample_rate"):
        pipe("astronaut", audio)
    with pytest.raises(UserError, match="fps"):
        pipe("astronaut", audio, sample_rate=sr, fps=0)


def test_photo_of_someone_unknown_is_refused_unless_allowed(tiny_checkpoint, tmp_path):
    pipe = APB2FacePipeline.from_pretrained(tiny_checkpoint)  # bundles the astronaut (and her mirror image)
    known = pipe.identify(pipe.prepare_reference(astronaut()).crop)
    assert known is not None and known.name in ("astronaut", "mirrored") and known.same_person
    photo = tmp_path / "hopper.png"
    cv2.imwrite(str(photo), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    for reference, where in ((photo, str(photo)), (grace_hopper(), "reference image")):
        with pytest.raises(UserError, match=r"not one of the checkpoint's people .*apb2face enroll") as err:
            pipe.prepare_reference(reference)
        assert str(err.value).startswith(where) and "allow_unknown=True" in str(err.value)
        assert pipe.prepare_reference(reference, allow_unknown=True).crop.shape == (64, 64, 3)
    found = pipe.identify(pipe.prepare_reference(photo, allow_unknown=True).crop)
    assert found is not None and not found.same_person and found.distance > 0.6
    audio, sr = speech()
    with pytest.raises(UserError, match="apb2face enroll"):
        pipe(photo, audio[:sr], sample_rate=sr)
    assert len(pipe(photo, audio[:sr], sample_rate=sr, allow_unknown=True).frames) == 25
    assert pipe.prepare_reference("mirrored").name == "mirrored"  # bundled names are never checked
    bare = APB2FacePipeline(pipe.model, pipe.config, {})  # no bundled people: nothing to compare with
    assert bare.prepare_reference(photo).name == "hopper"


def test_demo_checkpoint_is_package_data_and_loads_by_default():
    found = default_checkpoint()
    assert found is not None, "the demo checkpoint must ship inside the apb2face package"
    assert found.is_relative_to(Path(apb2face.__file__).parent)
    demo = APB2FacePipeline.from_pretrained()  # no path: the demo checkpoint
    assert demo.identities and demo.image_size == 128


def test_shipped_checkpoints_load_by_name_where_no_such_folder_exists(tmp_path, monkeypatch):
    """`from_pretrained("live")` and `--checkpoint live` find the shipped checkpoint; a folder of that name in the
    working directory wins (it is what the user points at); an unknown name stays a path. `live` is the demo's
    renderer, weight for weight, with a fuser of shorter look-ahead."""
    monkeypatch.chdir(tmp_path)
    for name in SHIPPED_CHECKPOINTS:
        assert resolve_checkpoint(name) == shipped_checkpoint(name) is not None
    live, demo = APB2FacePipeline.from_pretrained("live"), APB2FacePipeline.from_pretrained("demo")
    assert live.config.audio_lookahead < demo.config.audio_lookahead
    assert live.identities == demo.identities
    for key, value in demo.model.generator.state_dict().items():
        assert torch.equal(live.model.generator.state_dict()[key], value), key
    (tmp_path / "live").mkdir()
    assert resolve_checkpoint("live") == Path("live")
    assert resolve_checkpoint("nope") == Path("nope")
    with pytest.raises(ValueError, match="known: demo, live"):
        shipped_checkpoint("nope")


def test_a_built_wheel_carries_the_demo_checkpoint_and_resolves_it(tmp_path):
    """What a user gets from `pip install apb2face-*.whl`: the checkpoint files, found without the source tree."""
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."]
    subprocess.run(build, cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = (source / "dist").glob("apb2face-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for name in SHIPPED_CHECKPOINTS:
        folder = f"apb2face/checkpoints/{name}/"
        assert {folder + "config.json", folder + "model.safetensors", folder + "README.md"} <= names
        assert any(n.startswith(folder + "identities/") and n.endswith(".png") for n in names)
    # the unpacked wheel, first on the path, resolves its own copy (the source tree is nowhere near)
    probe = "from apb2face.inference.pipeline import default_checkpoint; print(default_checkpoint())"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "site" / "apb2face" / "checkpoints" / "demo"


def test_no_seed_means_the_seed_generate_and_stream_use(pipe, tmp_path):
    cli_seed = build_parser().parse_args(["generate", "--reference", "x", "--audio", "a.wav", "--out", "o.mp4"]).seed
    stream_seed = inspect.signature(StreamingSession).parameters["seed"].default
    assert cli_seed == stream_seed == DEFAULT_SEED
    audio, sr = speech()
    unseeded = pipe("astronaut", audio, sample_rate=sr)
    as_the_cli = pipe("astronaut", audio, sample_rate=sr, seed=cli_seed)
    np.testing.assert_array_equal(unseeded.pose, as_the_cli.pose)
    np.testing.assert_array_equal(unseeded.frames, as_the_cli.frames)
    # the seed does matter, so the equality above is not a coincidence of the motion model
    other = pipe("astronaut", audio, sample_rate=sr, seed=cli_seed + 1)
    assert not np.array_equal(other.pose, as_the_cli.pose)


def test_sway_centre_is_the_reference_pose_clipped():
    state = ReferenceState(name="r", crop=np.zeros((8, 8, 3), np.uint8), pose=(30.0, -4.0, 2.5), features=None)
    assert APB2FacePipeline.sway_centre(state) == (MAX_CENTRE_POSE_DEG, -4.0, 2.5)
    assert APB2FacePipeline.sway_centre(None) == (0.0, 0.0, 0.0)


def test_photos_are_read_upright_with_their_exif_orientation(tmp_path):
    from PIL import Image

    from apb2face.inference.faces import read_image

    upright = astronaut()
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # the sensor's orientation; EXIF 6 = rotate 90° clockwise
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    im.save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright.astype(int)).mean() < 8


def test_audio_windows_are_computed_lazily_and_equal_the_whole_tracks(pipe):
    sr = 16000
    pcm = (0.3 * np.sin(2 * np.pi * 180 * np.arange(60 * sr) / sr) * (np.arange(60 * sr) % 7000 < 4000)).astype(
        np.float32
    )
    consumed = []

    def chunks(size=4000):
        for lo in range(0, len(pcm), size):
            consumed.append(lo + size)
            yield pcm[lo : lo + size]

    n, fps = num_video_frames(len(pcm), 25), 25.0
    batches = pipe.window_batches(chunks(), n, fps, batch_size=16)
    first_idx, first = next(batches)
    # the first 16 frames (0.64 s) need their windows' look-ahead, not the minute of audio behind them
    assert consumed[-1] < 2 * sr
    rest = list(batches)
    assert consumed[-1] >= len(pcm)
    windows = np.concatenate([first] + [w for _, w in rest])
    indices = np.concatenate([first_idx] + [i for i, _ in rest])
    np.testing.assert_array_equal(indices, np.arange(n))
    whole = pipe.audio_windows(A.audio_features(pcm), indices, fps)
    np.testing.assert_allclose(windows, whole, atol=1e-3)


@pytest.mark.parametrize("fps", [1e9, 0.5, float("nan"), 121])
def test_frame_rates_outside_1_to_120_are_refused(pipe, fps):
    audio, sr = speech()
    with pytest.raises(UserError, match="fps must be between 1 and 120"):
        pipe.generate("astronaut", audio, sample_rate=sr, fps=fps)


def test_implausible_rates_and_long_audio_are_refused_before_any_work(pipe):
    audio, sr = speech()
    with pytest.raises(UserError, match="sample rate 1 Hz"):
        pipe.generate("astronaut", audio[:16000], sample_rate=1)
    with pytest.raises(UserError, match="longer than 1 s.*max-seconds"):
        pipe.generate("astronaut", audio, sample_rate=sr, max_seconds=1.0)
    one_hour = np.zeros(3600 * 8000, np.float32)
    with pytest.raises(UserError, match=f"longer than {DEFAULT_MAX_SECONDS:g} s"):
        pipe.generate("astronaut", one_hour, sample_rate=8000)
