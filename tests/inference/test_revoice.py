"""Full-frame re-voicing: play order, the seeking frame reader, and whole re-voices of small real videos (real
PyAV, the real face mesh, real espeak-ng speech), including the bad inputs users bring."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from apb2face.data.video import Mp4Writer, frame_to_rgb, iter_frames, probe
from apb2face.errors import UserError
from apb2face.inference.compose import ComposeConfig
from apb2face.inference.faces import align_face
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.inference.revoice import FrameReader, RevoiceConfig, pingpong, revoice, track_video
from tests.data.helpers import write_test_video
from tests.inference.helpers import astronaut, speech, write_wav

SIZE = (240, 320)  # (H, W) of the test videos


def background(shape: tuple[int, int] = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.stack([60 + 100 * xx / shape[1], 80 + 60 * yy / shape[0], 120 + 0 * xx], -1).astype(np.uint8)


def face_frames(count: int, shape: tuple[int, int] = SIZE, missing: range = range(0)) -> list[np.ndarray]:
    """A real face (the astronaut's, 150 px) drifting slowly over a gradient; frames in `missing` show no face."""
    face, _ = align_face(astronaut(), 150)
    frames = []
    for k in range(count):
        frame = background(shape)
        if k not in missing:
            x, y = int(shape[1] / 2 - 75 + 12 * np.sin(k / 6)), int(shape[0] / 2 - 75 + 5 * np.cos(k / 8))
            frame[y : y + 150, x : x + 150] = face
        frames.append(frame)
    return frames


def numbered_frames(count: int, shape: tuple[int, int] = (64, 96)) -> list[np.ndarray]:
    """Frames whose brightness tells their index (k * 6), robust to the codec."""
    return [np.full((*shape, 3), 10 + 6 * k, np.uint8) for k in range(count)]


def frame_number(frame: np.ndarray) -> int:
    return int(round((float(frame.mean()) - 10) / 6))


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint: Path) -> APB2FacePipeline:
    return APB2FacePipeline.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    audio, rate = speech()
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", audio, rate)


# ------------------------------------------------------------------------------------------------ play order


def test_pingpong_plays_forward_and_back_without_a_jump() -> None:
    order = pingpong(4, 12)
    assert order.tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    long = pingpong(37, 500)
    assert (np.abs(np.diff(long)) == 1).all() and long.min() == 0 and long.max() == 36
    assert pingpong(1, 5).tolist() == [0] * 5
    assert pingpong(10, 6).tolist() == [0, 1, 2, 3, 4, 5]  # shorter audio: the video's start, forward


@pytest.mark.parametrize("gop", [None, 5])  # x264's default (one keyframe) and short GOPs with B-frames
def test_frame_reader_serves_any_pingpong_order(tmp_path: Path, gop: int | None) -> None:
    path = write_test_video(tmp_path / "numbered.mp4", numbered_frames(30), gop=gop)
    track = track_pts(path)
    order = pingpong(30, 100)
    with FrameReader(path, track, chunk=4) as reader:
        got = [frame_number(reader[i]) for i in order]
        seeks = reader.seeks
    assert got == order.tolist()
    assert seeks >= 2  # the backward runs were read by seeking, not by holding the video


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame as the re-voice decodes it (`frame_to_rgb`: OpenCV's YUV conversion, not swscale's)."""
    with av.open(str(path)) as c:
        return [frame_to_rgb(f) for f in c.decode(c.streams.video[0])]


def track_pts(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.asarray([f.pts for f in c.decode(c.streams.video[0])], np.int64)


# ------------------------------------------------------------------------------------------------ whole re-voices


def test_revoice_keeps_the_frame_and_replaces_the_face(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path):
    """Same size and rate as the video, as long as the new audio (the 1 s video plays forward and back), the new
    audio muxed; pixels away from the face are the video's own; frames without a face pass through unchanged."""
    frames = face_frames(25, missing=range(10, 14))
    video = write_test_video(tmp_path / "talk.mp4", frames)
    out = tmp_path / "dubbed.mp4"
    seen: dict[int, tuple[int, bool]] = {}
    report = revoice(
        pipe, "astronaut", video, speech_wav, out, on_frame=lambda k, s, f, p: seen.setdefault(k, (s, p is not None))
    )
    info = probe(out)
    audio, rate = speech()
    assert (info.height, info.width) == SIZE and info.fps == 25.0 and info.has_audio
    assert report.frames == info.num_frames == int(np.ceil(len(audio) / rate * 25 - 1e-9))
    assert [seen[k][0] for k in range(report.frames)] == pingpong(25, report.frames).tolist()  # longer: ping-pong
    assert report.faces_found == 21 and report.passed_through == sum(not p for _s, p in seen.values()) > 0
    assert all(not pasted for s, pasted in seen.values() if 10 <= s < 14)
    source = [f for _t, f in iter_frames(video)]
    output = [f for _t, f in iter_frames(out)]
    changed = []
    for k, frame in enumerate(output):
        s, pasted = seen[k]
        diff = np.abs(frame.astype(int) - source[s].astype(int))
        assert diff[:, :60].mean() < 2.0 and diff[:, -60:].mean() < 2.0  # the frame's edges: codec noise only
        if not pasted:
            assert diff.mean() < 2.0  # no face: the frame as it was
        else:
            changed.append(diff[80:160, 120:200].mean())  # the face (random weights: something else entirely)
    assert min(changed) > 10.0
    with av.open(str(out)) as c:  # the new audio, not the video's (which has none)
        assert abs(c.streams.audio[0].duration * c.streams.audio[0].time_base - len(audio) / rate) < 0.1


def test_mouth_region_keeps_the_eyes(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path) -> None:
    video = write_test_video(tmp_path / "talk.mp4", face_frames(20))
    track = track_video(video, RevoiceConfig())
    source = decoded(video)  # `on_frame` sees the frames as the re-voice decoded them, before encoding
    eye_diffs: dict[str, list[float]] = {"face": [], "mouth": []}

    def eye_band_change(frame: np.ndarray, s: int) -> float:
        eyes = track.points[s][-2:]  # outer eye corners
        x0, x1, y = int(eyes[:, 0].min()), int(eyes[:, 0].max()), int(eyes[:, 1].mean())
        return float(np.abs(frame[y - 6 : y + 6, x0:x1].astype(int) - source[s][y - 6 : y + 6, x0:x1]).mean())

    for region, diffs in eye_diffs.items():
        revoice(
            pipe,
            "astronaut",
            video,
            speech_wav,
            tmp_path / f"{region}.mp4",
            RevoiceConfig(compose=ComposeConfig(region=region)),
            on_frame=lambda k, s, frame, pasted, diffs=diffs: diffs.append(eye_band_change(frame, s)),
        )
    assert np.mean(eye_diffs["mouth"]) < 0.5 < 10.0 < np.mean(eye_diffs["face"])


def test_mix_keeps_the_old_audio_under_the_new(pipe: APB2FacePipeline, tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    old = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    video = write_test_video(tmp_path / "talk.mp4", face_frames(25), audio=old)
    silence = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    for mix in (False, True):
        out = tmp_path / f"mix{mix}.mp4"
        revoice(pipe, "astronaut", video, silence, out, RevoiceConfig(mix=mix, mix_gain=0.3))
        from apb2face.data.audio import load_audio

        level = float(np.sqrt(np.mean(load_audio(out)[2000:14000] ** 2)))
        assert (level > 0.08) if mix else (level < 0.01)  # 0.3 x 0.5 / sqrt(2) = 0.106


# ------------------------------------------------------------------------------------------------ stages in threads


def test_overlapped_stages_write_the_same_file(
    pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding, model + paste and encoding in threads of their own: the encoder gets the same frames and the same
    audio, in the same order (ping-pong and pass-through frames included), as with the stages one after another.
    (The files themselves are compared by what reached the encoder: x264's bytes for the same input were seen to
    differ between two runs in one test process, threads or not.)"""
    video = write_test_video(tmp_path / "talk.mp4", face_frames(20, missing=range(6, 9)), gop=5)
    encoded: dict[bool, list[tuple[str, np.ndarray]]] = {True: [], False: []}
    mode = {"overlap": False}
    write_frame, write_audio = Mp4Writer.write_frame, Mp4Writer.write_audio

    def frame_spy(writer: Mp4Writer, image: np.ndarray) -> None:
        encoded[mode["overlap"]].append(("frame", np.array(image, copy=True)))
        write_frame(writer, image)

    def audio_spy(writer: Mp4Writer, pcm: np.ndarray) -> None:
        encoded[mode["overlap"]].append(("audio", np.array(pcm, copy=True)))
        write_audio(writer, pcm)

    monkeypatch.setattr(Mp4Writer, "write_frame", frame_spy)
    monkeypatch.setattr(Mp4Writer, "write_audio", audio_spy)
    for overlap in (False, True):
        mode["overlap"] = overlap
        out = tmp_path / f"overlap{overlap}.mp4"
        revoice(pipe, "astronaut", video, speech_wav, out, RevoiceConfig(overlap=overlap, batch_size=4))
        assert probe(out).num_frames == sum(kind == "frame" for kind, _ in encoded[overlap])
    assert [kind for kind, _ in encoded[True]] == [kind for kind, _ in encoded[False]]
    assert sum(kind == "frame" for kind, _ in encoded[True]) > 20  # the audio outlasts the video: ping-pong
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(encoded[True], encoded[False]))
    assert not revoice_threads()


def revoice_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("revoice-decode", "revoice-encode", "track-decode")]


class StageFailed(Exception):
    pass


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("stage", ["decode", "generate", "encode"])
def test_a_failing_stage_raises_its_own_error_and_leaves_no_file(
    pipe: APB2FacePipeline,
    tmp_path: Path,
    speech_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    overlap: bool,
) -> None:
    video = write_test_video(tmp_path / "talk.mp4", face_frames(20))
    error = StageFailed(stage)
    calls, fail_at = {"n": 0}, 3 if stage == "generate" else 30  # model calls are per batch of 4 frames

    def failing(original):  # noqa: ANN001, ANN202
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise error
            return original(*args, **kwargs)

        return call

    if stage == "decode":
        monkeypatch.setattr(FrameReader, "__getitem__", failing(FrameReader.__getitem__))
    elif stage == "generate":
        monkeypatch.setattr(pipe, "step", failing(pipe.step))
    else:
        monkeypatch.setattr(Mp4Writer, "write_frame", failing(Mp4Writer.write_frame))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(StageFailed) as raised:
        revoice(
            pipe, "astronaut", video, speech_wav, folder / "dubbed.mp4", RevoiceConfig(overlap=overlap, batch_size=4)
        )
    assert raised.value is error
    assert not list(folder.iterdir())  # neither the file nor its temporary
    assert not revoice_threads()


# ------------------------------------------------------------------------------------------------ bad input


def test_no_face_at_all_is_one_line(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path) -> None:
    video = write_test_video(tmp_path / "empty.mp4", [background()] * 10)
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match="no face found in any frame") as err:
        revoice(pipe, "astronaut", video, speech_wav, out)
    assert str(err.value.path) == str(video) and not out.exists()


def test_no_video_stream_is_one_line(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match="no video stream"):
        revoice(pipe, "astronaut", speech_wav, speech_wav, out)
    assert not out.exists()


def test_larger_than_4k_is_refused_before_decoding(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path):
    video = write_test_video(tmp_path / "8k.mp4", [np.zeros((2400, 4200, 3), np.uint8)])
    with pytest.raises(UserError, match="up to 4K"):
        revoice(pipe, "astronaut", video, speech_wav, tmp_path / "out.mp4")


def test_rotated_phone_video_is_re_voiced_upright(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path):
    upright = face_frames(12, shape=(320, 240))
    stored = [np.ascontiguousarray(np.rot90(f, -1)) for f in upright]  # the sensor's landscape; display turns it
    video = write_test_video(tmp_path / "phone.mp4", stored, rotation=90)
    out = tmp_path / "out.mp4"
    report = revoice(pipe, "astronaut", video, speech_wav, out)
    assert report.faces_found == 12 and report.size == (320, 240)
    first = next(iter(iter_frames(out)))[1]
    assert first.shape[:2] == (320, 240)
    assert np.abs(first[:, :40].astype(int) - upright[0][:, :40]).mean() < 3.0  # upright, untouched edges


def test_variable_frame_rate_plays_at_its_average_rate(pipe: APB2FacePipeline, tmp_path: Path, speech_wav: Path):
    frames = face_frames(20)
    gaps = np.where(np.arange(19) % 2 == 0, 0.03, 0.05)  # 30 and 50 ms: 25 fps on average, never regular
    times = np.concatenate([[0.0], np.cumsum(gaps)]).tolist()
    video = write_test_video(tmp_path / "vfr.mp4", frames, times=times)
    out = tmp_path / "out.mp4"
    report = revoice(pipe, "astronaut", video, speech_wav, out)
    info = probe(out)
    assert abs(info.fps - probe(video).fps) < 0.5 and report.frames == info.num_frames


def test_track_smooths_the_pose_that_drives_the_model(tmp_path: Path) -> None:
    from apb2face.inference.compose import high_pass_jitter

    video = write_test_video(tmp_path / "talk.mp4", face_frames(30))
    raw = track_video(video, RevoiceConfig(pose_sigma=0.0))
    smooth = track_video(video, RevoiceConfig())
    assert high_pass_jitter(smooth.pose) < 0.6 * high_pass_jitter(raw.pose)
    assert np.abs(smooth.pose - raw.pose).mean() < 1.0  # degrees: the head still turns where the video's does
    assert (smooth.eyes == raw.eyes).all()  # blinks are short: never smoothed


@pytest.mark.slow
def test_4k_video_is_re_voiced(pipe: APB2FacePipeline, tmp_path: Path) -> None:
    shape = (2160, 3840)
    face, _ = align_face(astronaut(), 1400)  # a talking head: the crop fills 2/3 of the height
    frames = []
    for k in range(4):
        frame = background(shape)
        frame[400 + 4 * k : 1800 + 4 * k, 1200:2600] = face
        frames.append(frame)
    video = write_test_video(tmp_path / "4k.mp4", frames)
    wav = write_wav(tmp_path / "short.wav", np.zeros(4 * 640, np.float32), 16000)  # 0.16 s: 4 frames
    out = tmp_path / "out.mp4"
    report = revoice(pipe, "astronaut", video, wav, out)
    assert report.size == shape and report.faces_found == 4 and report.frames == 4
    info = probe(out)
    assert (info.height, info.width) == shape
