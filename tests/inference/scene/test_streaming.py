"""A scene streamed live, one audio stream per speaker: the scene frames equal the offline `generate_scene` frames
for any chunking and interleaving of the streams, wait for the slowest stream, and bad input is one line (real face
mesh, real face recogniser, real espeak-ng speech, a tiny random model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from apb2face.errors import UserError
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.revoice import RevoiceConfig
from apb2face.inference.scene import (
    SceneAudio,
    SceneConfig,
    SceneFrame,
    SceneStreamingSession,
    generate_scene,
    track_scene,
)
from tests.inference.helpers import make_scene_checkpoint, noise_speech, speech, two_person_scene
from tests.inference.test_scene import two_person_video

RATE = 16000
EXACT = SceneConfig(render=RevoiceConfig(batch_size=1))  # one frame per model call, as a stream renders


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> APB2FacePipeline:
    return APB2FacePipeline.from_pretrained(make_scene_checkpoint(tmp_path_factory.mktemp("ckpt") / "scene"))


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "two.png"
    cv2.imwrite(str(path), cv2.cvtColor(two_person_scene(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def voices() -> dict[str, np.ndarray]:
    """Two streams of different lengths: id00 says an espeak-ng sentence (1.1 s), id03 makes speech-like noise
    (0.7 s, so it is padded with silence at the end)."""
    voice, rate = speech()
    assert rate == RATE
    return {"id00": voice[: int(1.1 * RATE)], "id03": noise_speech(0.7, seed=3)}


def scene_audio(voices: dict[str, np.ndarray]) -> SceneAudio:
    """The offline form of the same streams: each padded with silence to the longest."""
    names = tuple(voices)
    tracks = np.zeros((len(names), max(len(v) for v in voices.values())), np.float32)
    for i, v in enumerate(voices.values()):
        tracks[i, : len(v)] = v
    return SceneAudio(names, tracks, np.clip(tracks.sum(axis=0), -1, 1), RATE)


def offline_frames(pipe: APB2FacePipeline, scene: Path, audio: SceneAudio, out: Path) -> np.ndarray:
    frames: dict[int, np.ndarray] = {}
    generate_scene(pipe, scene, audio, out, EXACT, on_frame=lambda k, _s, f, _p: frames.setdefault(k, f.copy()))
    return np.stack([frames[k] for k in range(len(frames))])


def pushes_round_robin(voices: dict[str, np.ndarray], sizes: dict[str, int]) -> list[tuple[str, np.ndarray]]:
    """Each stream cut into chunks of its own size, the streams taking turns."""
    chunked = {name: [v[lo : lo + sizes[name]] for lo in range(0, len(v), sizes[name])] for name, v in voices.items()}
    out = []
    for i in range(max(len(c) for c in chunked.values())):
        out += [(name, chunks[i]) for name, chunks in chunked.items() if i < len(chunks)]
    return out


def pushes_shuffled(voices: dict[str, np.ndarray], seed: int) -> list[tuple[str, np.ndarray]]:
    """Random chunk sizes (1 to 2000 samples), the next chunk from a random stream: each stream stays in order."""
    rng = np.random.default_rng(seed)
    left = {name: v for name, v in voices.items()}
    out = []
    while left:
        name = list(left)[rng.integers(len(left))]
        size = int(rng.integers(1, 2000))
        out.append((name, left[name][:size]))
        left[name] = left[name][size:]
        if not len(left[name]):
            del left[name]
    return out


def pushes_one_after_another(voices: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """All of id00 (4000-sample chunks) before any of id03 (333-sample chunks)."""
    return pushes_round_robin({"id00": voices["id00"]}, {"id00": 4000}) + pushes_round_robin(
        {"id03": voices["id03"]}, {"id03": 333}
    )


def stream(session: SceneStreamingSession, pushes: list[tuple[str, np.ndarray]]) -> tuple[list[SceneFrame], list[int]]:
    """(every frame, how many had come out after each push)."""
    frames, counts = [], []
    for name, chunk in pushes:
        frames += session.push(name, chunk)
        counts.append(len(frames))
    frames += session.finish()
    return frames, counts


SCHEDULES = ("640 each, taking turns", "160 and 1111, taking turns", "random sizes and order", "one after another")


def schedule(label: str, voices: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    if label == "640 each, taking turns":
        return pushes_round_robin(voices, {"id00": 640, "id03": 640})
    if label == "160 and 1111, taking turns":
        return pushes_round_robin(voices, {"id00": 160, "id03": 1111})
    if label == "random sizes and order":
        return pushes_shuffled(voices, seed=1)
    return pushes_one_after_another(voices)


def check_streams_equal_offline(
    pipe: APB2FacePipeline, scene: Path, voices: dict[str, np.ndarray], labels: tuple[str, ...], out: Path
) -> np.ndarray:
    audio = scene_audio(voices)
    offline = offline_frames(pipe, scene, audio, out)
    assert len(offline) == 28  # 1.1 s at 25 fps
    track = track_scene(scene, EXACT, crop_scale=pipe.crop_scale)  # found once, streamed several times
    for label in labels:
        pushes = schedule(label, voices)
        with SceneStreamingSession(pipe, track, list(audio.names), EXACT) as session:
            frames, counts = stream(session, pushes)
        assert [f.index for f in frames] == list(range(len(offline))), label
        assert [f.timestamp for f in frames] == [k / 25 for k in range(len(offline))], label
        assert all(f.source == 0 and len(f.pasted) == 2 and None not in f.pasted for f in frames), label
        np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline, err_msg=label)
        if label == "one after another":  # nothing comes out while id03 has sent nothing
            assert counts[len(pushes_round_robin({"id00": voices["id00"]}, {"id00": 4000})) - 1] == 0
        else:  # frames come out while the streams are still arriving, not only at the end
            assert counts[len(counts) // 2] > 5, label
    return offline


def test_streamed_scene_equals_offline_for_any_chunking(
    pipe: APB2FacePipeline, scene_png: Path, voices: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The tiny random model (its crops do not change with the audio: order, waiting and paste-back are checked
    here, the audio's alignment by the slow test below)."""
    labels = ("160 and 1111, taking turns", "one after another")  # all four in the slow test
    check_streams_equal_offline(pipe, scene_png, voices, labels, tmp_path / "offline.mp4")


@pytest.mark.slow
def test_streamed_scene_of_the_demo_model_equals_offline(
    scene_png: Path, voices: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The demo checkpoint, whose mouths follow the audio: equal bit for bit, so every face heard its own stream at
    the right frames."""
    offline = check_streams_equal_offline(
        APB2FacePipeline.from_pretrained(), scene_png, voices, SCHEDULES, tmp_path / "offline.mp4"
    )
    assert np.abs(offline[1:].astype(int) - offline[:-1]).max() > 20  # the faces move: not a still picture


def test_a_frame_waits_for_every_stream_and_a_listener_stays_idle(
    pipe: APB2FacePipeline, scene_png: Path, voices: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """id03 speaks alone, id00 listens; the lagging stream holds the scene back until fill() pads it."""
    with SceneStreamingSession(pipe, scene_png, ["id03"], EXACT) as session:
        assert [(f.identity, f.speaker) for f in session.faces] == [("id00", None), ("id03", "id03")]
        lookahead = session.lookahead_s
        half = voices["id03"][: RATE // 2]
        frames = session.push("id03", half)
        # frame n is out once the audio covers n / 25 s plus the look-ahead
        assert len(frames) == int(np.floor((0.5 - lookahead) * 25 + 1e-9)) + 1
        frames += session.push("id03", voices["id03"][RATE // 2 :]) + session.finish()
    audio = SceneAudio(("id03",), voices["id03"][None], voices["id03"], RATE)
    offline = offline_frames(pipe, scene_png, audio, tmp_path / "listener.mp4")
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline)

    with SceneStreamingSession(pipe, scene_png, ["id00", "id03"], EXACT) as session:
        assert session.push("id00", voices["id00"][:8000]) == []  # id03 has sent nothing yet
        filled = session.fill(["id03"])  # id03 is silent: padded up to id00
        assert len(filled) > 5 and session.received == {"id00": 8000, "id03": 8000}


def test_a_video_scene_streams_as_offline(pipe: APB2FacePipeline, tmp_path: Path) -> None:
    """The faces' pose and blinks follow the video, played forward then backward past its end (30 frames of 20)."""
    video = two_person_video(tmp_path / "two.mp4")
    voice = noise_speech(1.2, seed=5)
    audio = SceneAudio(("id03",), voice[None], voice, RATE)
    offline = offline_frames(pipe, video, audio, tmp_path / "video.mp4")
    with SceneStreamingSession(pipe, video, ["id03"], EXACT) as session:
        frames, _counts = stream(session, pushes_round_robin({"id03": voice}, {"id03": 700}))
    assert [f.source for f in frames][18:23] == [18, 19, 18, 17, 16]
    assert all((f.pasted[1] is None) == (8 <= f.source < 12) for f in frames)  # the right face leaves and returns
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline)


def test_bad_input_is_one_line(pipe: APB2FacePipeline, scene_png: Path) -> None:
    with SceneStreamingSession(pipe, scene_png, ["id00", "id03"]) as session:
        for name, pcm, message in [
            ("id01", np.zeros(160, np.float32), r"unknown speaker 'id01' \(speakers of this scene: id00, id03\)"),
            ("id00", np.zeros(160, np.int32), "PCM chunks must be float or int16 mono samples, got int32"),
        ]:
            with pytest.raises(UserError, match=message) as info:
                session.push(name, pcm)
            assert "\n" not in str(info.value)
        assert session.received == {"id00": 0, "id03": 0}  # nothing of a refused chunk was kept
    with pytest.raises(UserError, match=r"speaker id01 is no face in the scene"):
        SceneStreamingSession(pipe, scene_png, ["id01"])
    with pytest.raises(UserError, match="speaker id00 is given twice"):
        SceneStreamingSession(pipe, scene_png, ["id00", "id00"])
    with pytest.raises(UserError, match="at least one speaker"):
        SceneStreamingSession(pipe, scene_png, [])
