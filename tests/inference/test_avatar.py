"""Avatar loops: a built-in person's clip made from the checkpoint's synth recipe (once, into the cache), full frames
from the Python pipeline over it, full frames streamed over it equal to the offline ones for any chunking, and bad
input in one line. The CLI side is tests/cli/test_generate_full_frame.py and tests/cli/test_stream.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.inference.avatar import avatar_clip, load_avatar
from apb2face.inference.avatar_stream import AvatarSession
from apb2face.inference.compose import ComposeConfig, box_roi
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.revoice import FrameReader, RevoiceConfig, pingpong
from tests.data.helpers import write_test_video
from tests.inference.helpers import noise_speech
from tests.inference.test_revoice import face_frames

RECIPE = {"identities": 1, "clips_per_identity": 1, "size": 128, "seed": 0}


def builtin_checkpoint(tiny: Path, folder: Path) -> Path:
    """The tiny random checkpoint with its first identity renamed to the recipe's built-in person id00 and the
    recipe in meta.replay (as the demo checkpoint's)."""
    shutil.copytree(tiny, folder)
    config = json.loads((folder / "config.json").read_text())
    first = config["identities"][0]
    config["identities"] = ["id00" if name == first else name for name in config["identities"]]
    config["meta"]["replay"] = [{"synth": RECIPE}]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "identities" / f"{first}.png").rename(folder / "identities" / "id00.png")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("APB2FACE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def pipe(
    one_torch_thread: None, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, cache: Path
) -> APB2FacePipeline:
    return APB2FacePipeline.from_pretrained(builtin_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("b") / "c"))


@pytest.fixture(scope="module")
def avatar(pipe: APB2FacePipeline):
    return load_avatar(pipe, "id00", RevoiceConfig())


def test_a_built_in_person_gets_a_clip_made_once_into_the_cache(pipe, avatar, cache: Path) -> None:
    assert avatar.video.is_relative_to(cache / "avatars") and avatar.video.name == "id00.mp4"
    assert avatar.track.shape == (256, 256) and avatar.track.fps == 25.0 and avatar.track.found.mean() > 0.95
    stamp = avatar.video.stat().st_mtime_ns
    assert avatar_clip(pipe.checkpoint, "id00", pipe.meta) == avatar.video
    assert avatar.video.stat().st_mtime_ns == stamp  # not made again
    assert len(list((cache / "tracks").glob("*.npz"))) == 1


def test_the_pipeline_returns_full_frames_over_the_loop(pipe, avatar) -> None:
    pcm = noise_speech(7.0)  # longer than the 6 s clip: the loop turns around
    out = pipe("id00", pcm, sample_rate=16000, full_frame=True, batch_size=8)
    n = A.num_video_frames(len(pcm), 25.0)
    assert out.frames.shape == (n, 256, 256, 3) and out.fps == 25.0 and out.landmarks.shape[0] == n
    ticks = avatar.track.ticks()
    source = ticks[pingpong(len(ticks), n)]
    np.testing.assert_array_equal(out.pose, avatar.track.pose[source])
    # outside the pasted box every pixel is the clip's own, frame for frame (played forward, then backward)
    with FrameReader(avatar.video, avatar.track.pts, 32) as reader:
        for k in (0, 60, 149, 150, 170):
            roi = box_roi(avatar.track.box(int(source[k])), (256, 256))
            outside = np.ones((256, 256), bool)
            outside[roi.y0 : roi.y1, roi.x0 : roi.x1] = False
            real = reader[int(source[k])]
            np.testing.assert_array_equal(out.frames[k][outside], real[outside])
            assert np.abs(roi.view(out.frames[k]).astype(int) - roi.view(real)).mean() > 1.0  # a face was pasted
    # --region mouth keeps the eyes: less of the frame changes
    mouth = pipe("id00", pcm[:16000], sample_rate=16000, full_frame=True, compose=ComposeConfig(region="mouth"))
    face = pipe("id00", pcm[:16000], sample_rate=16000, full_frame=True)
    with FrameReader(avatar.video, avatar.track.pts, 32) as reader:
        real = np.stack([reader[int(s)] for s in source[:25]])
    changed = [int((np.abs(x.astype(int) - real).max(axis=3) > 8).sum()) for x in (mouth.frames, face.frames)]
    assert 0 < changed[0] < 0.7 * changed[1]


@pytest.mark.parametrize("sizes", [[320], [17, 1000, 640, 33], [16000 * 3]])
def test_streamed_full_frames_equal_the_offline_ones(pipe, avatar, sizes) -> None:
    pcm = noise_speech(2.3, seed=3)
    offline = pipe("id00", pcm, sample_rate=16000, full_frame=True, batch_size=1)
    session = AvatarSession(pipe, avatar)
    frames, lo, k = [], 0, 0
    while lo < len(pcm):
        frames += session.push(pcm[lo : lo + sizes[k % len(sizes)]])
        lo += sizes[k % len(sizes)]
        k += 1
    frames += session.finish()
    assert [f.index for f in frames] == list(range(len(offline.frames)))
    np.testing.assert_array_equal(np.stack([f.full_frame for f in frames]), offline.frames)
    np.testing.assert_array_equal(np.stack([f.landmarks for f in frames]), offline.landmarks)
    np.testing.assert_array_equal(np.stack([f.pose for f in frames]), offline.pose)
    assert session.blended == len(frames) and session.blend_seconds > 0


def test_bad_input_is_one_line(pipe, tiny_checkpoint: Path, tmp_path: Path) -> None:
    pcm = noise_speech(1.0)
    with pytest.raises(UserError, match="has no avatar clip .* not a built-in person") as err:
        pipe("mirrored", pcm, sample_rate=16000, full_frame=True)  # not in the recipe, no avatars/ clip
    assert "\n" not in str(err.value) and str(pipe.checkpoint) in str(err.value)
    with pytest.raises(UserError, match="renders over an identity's avatar clip"):
        pipe(np.zeros((64, 64, 3), np.uint8), pcm, sample_rate=16000, full_frame=True)
    with pytest.raises(UserError, match="pose and eyes cannot be given with full_frame"):
        pipe("id00", pcm, sample_rate=16000, full_frame=True, pose=np.zeros(3))
    short = shutil.copytree(tiny_checkpoint, tmp_path / "short")
    (short / "avatars").mkdir()
    clip = write_test_video(short / "avatars" / "mirrored.mp4", face_frames(20))  # 0.8 s
    with pytest.raises(UserError, match=r"avatar clip is 0\.80 s long; an avatar loop needs at least 1 s") as err:
        APB2FacePipeline.from_pretrained(short)("mirrored", pcm, sample_rate=16000, full_frame=True)
    assert err.value.path == str(clip)
