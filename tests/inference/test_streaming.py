"""Streaming: incremental features equal the offline ones, frames equal the offline pipeline's, timestamps do not drift
and memory stays flat over a long stream, and (with the demo checkpoint) a closed, still mouth in silence.
The `stream` command is tested in tests/cli/test_stream.py."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.inference.export import load_onnx
from apb2face.inference.pipeline import APB2FacePipeline, default_checkpoint
from apb2face.inference.streaming import IN_FLIGHT_PER_WORKER, StreamingSession, simulate_live
from apb2face.inference.streaming_features import StreamingFeatures, samples_for_row
from tests.inference.helpers import noise_speech
from tests.inference.test_export import make_checkpoint

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def push_in_chunks(session: StreamingSession, pcm: np.ndarray, sizes: list[int]) -> list:
    frames, lo, k = [], 0, 0
    while lo < len(pcm):
        frames += session.push(pcm[lo : lo + sizes[k % len(sizes)]])
        lo += sizes[k % len(sizes)]
        k += 1
    return frames + session.finish()


# ------------------------------------------------------------------------------------------------ features


@pytest.mark.parametrize("samples", [1, 159, 160, 401, 12345, 3 * 16000 + 77])
@pytest.mark.parametrize("chunk", [1, 37, 320, 640, 100_000])
@pytest.mark.parametrize("loudness", ["absolute", "relative"])
def test_streaming_features_equal_offline_bit_for_bit(samples, chunk, loudness):
    if chunk == 1 and samples > 2000:
        pytest.skip("sample-by-sample only on short inputs (slow)")
    pcm = noise_speech(samples / A.SAMPLE_RATE + 1e-9, seed=samples)[:samples]
    pcm = np.pad(pcm, (0, samples - len(pcm)))
    stream = StreamingFeatures(loudness=loudness)
    rows = [stream.push(pcm[i : i + chunk]) for i in range(0, samples, chunk)] + [stream.finish()]
    np.testing.assert_array_equal(np.concatenate(rows), A.audio_features(pcm, loudness=loudness))


def test_feature_rows_are_final_after_a_bounded_horizon():
    pcm = noise_speech(0.5)
    stream = StreamingFeatures()
    emitted = 0
    for i in range(len(pcm)):
        emitted += len(stream.push(pcm[i : i + 1]))
        # row r comes out exactly when sample samples_for_row(r) has arrived: 52.5 ms after the row's centre
        assert emitted == sum(1 for r in range(100) if samples_for_row(r) <= i + 1)
    assert samples_for_row(0) == 840


# ------------------------------------------------------------------------------------------------ sessions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    # `paper` (64 px, width 0.25): with random weights its frames follow the latent strongly (the skip paths of
    # `mobile`/`skip` copy the reference so closely that random-weight frames change by one grey level)
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), "paper")


@pytest.fixture(scope="module")
def pipe(checkpoint) -> APB2FacePipeline:
    return APB2FacePipeline.from_pretrained(checkpoint)


def test_stream_equals_offline_frame_for_frame(pipe):
    pcm = noise_speech(2.3)
    offline = pipe("anna", pcm, sample_rate=16000, seed=5, batch_size=1)
    session = StreamingSession(pipe, "anna", seed=5)
    frames = push_in_chunks(session, pcm, [320, 640, 480, 17, 1000])  # 20, 40, 30 ms and odd sizes
    assert len(frames) == len(offline.frames) == A.num_video_frames(len(pcm), 25.0)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [f.timestamp for f in frames] == [i / 25.0 for i in range(len(frames))]
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)
    np.testing.assert_array_equal(np.stack([f.landmarks for f in frames]), offline.landmarks)
    np.testing.assert_array_equal(np.stack([f.pose for f in frames]), offline.pose)
    np.testing.assert_array_equal(np.stack([f.eyes for f in frames]), offline.eyes)
    # the frames moved with the audio (the equality above is not between constant videos)
    assert np.abs(np.diff(np.stack([f.image for f in frames]).astype(float), axis=0)).mean() > 0.05
    # offline batches of 16 differ from batch-1 rendering only by float rounding
    batched = pipe("anna", pcm, sample_rate=16000, seed=5)
    assert np.abs(batched.frames.astype(int) - offline.frames.astype(int)).max() <= 1


@pytest.mark.parametrize("lookahead", [0, 2])
def test_stream_equals_offline_with_a_short_look_ahead(checkpoint, tmp_path, lookahead):
    """A model trained with little or no look-ahead (for latency) streams the offline frames too, from the first."""
    import json
    import shutil

    short = Path(shutil.copytree(checkpoint, tmp_path / "short"))
    config = json.loads((short / "config.json").read_text())
    config["model"]["audio_lookahead"] = lookahead
    (short / "config.json").write_text(json.dumps(config))
    pipe = APB2FacePipeline.from_pretrained(short)
    pcm = noise_speech(1.2)
    offline = pipe("anna", pcm, sample_rate=16000, seed=5, batch_size=1)
    session = StreamingSession(pipe, "anna", seed=5)
    frames = push_in_chunks(session, pcm, [320, 17, 1000])
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)
    assert session.lookahead_s == pytest.approx((lookahead + 3) * 0.010 + 0.0125)


def with_model_options(checkpoint: Path, directory: Path, **options: object) -> Path:
    """A copy of `checkpoint` whose config.json sets the given model options (same weights)."""
    import json
    import shutil

    copy = Path(shutil.copytree(checkpoint, directory))
    config = json.loads((copy / "config.json").read_text())
    config["model"].update(options)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_relative_loudness_streams_the_offline_frames_and_ignores_the_recording_gain(checkpoint, tmp_path):
    relative = APB2FacePipeline.from_pretrained(
        with_model_options(checkpoint, tmp_path / "rel", audio_loudness="relative")
    )
    absolute = APB2FacePipeline.from_pretrained(checkpoint)
    hiss = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * np.float32(1e-4)
    pcm = noise_speech(2.0, seed=8) + hiss  # no digital silence: zeros stay zeros at any gain
    offline = relative("anna", pcm, sample_rate=16000, seed=5, batch_size=1)
    frames = push_in_chunks(StreamingSession(relative, "anna", seed=5), pcm, [320, 17, 1000])
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)

    # 20 dB quieter: the relative model's fuser hears the same rows (float rounding), the absolute one's does not
    def heard(pipe: APB2FacePipeline, audio: np.ndarray) -> np.ndarray:
        return np.concatenate([w for _, w in pipe.window_batches([audio], 50, 25.0, 16)])

    quiet = pcm * np.float32(0.1)
    drift = np.abs(heard(relative, quiet) - heard(relative, pcm)).max()
    assert drift < 1e-3
    assert np.abs(heard(absolute, quiet) - heard(absolute, pcm)).max() > 100 * max(drift, 1e-4)


def test_frames_come_out_with_bounded_lookahead(pipe):
    pcm = noise_speech(3.0)
    session = StreamingSession(pipe, "anna", seed=0)
    frames = []
    for lo in range(0, len(pcm), 320):
        frames += session.push(pcm[lo : lo + 320])
    live = len(frames)
    frames += session.finish()
    # 120 ms look-ahead of the config + 40 ms of delta context + half a 25 ms window, rounded up to the 20 ms chunk
    assert pipe.config.audio_lookahead == 12
    assert session.lookahead_s == pytest.approx(0.1625)
    lags = [f.ready_sample / 16000 - f.timestamp for f in frames[:live]]
    assert max(lags) == pytest.approx(0.18) and min(lags) == pytest.approx(0.18)
    # only the frames of the last 180 ms wait for the end of the stream
    assert live == sum(1 for f in frames if f.timestamp + 0.18 <= len(pcm) / 16000 + 1e-9) == len(frames) - 4


def test_supplied_motion_and_int16_input_match_offline(pipe):
    pcm = noise_speech(1.5, seed=3)
    pcm16 = np.round(pcm * 32767).astype(np.int16)
    n = A.num_video_frames(len(pcm), 25.0)
    pose = np.stack([np.linspace(-10, 10, n), np.zeros(n), np.linspace(5, -5, n)], axis=1)
    eyes = np.full((n - 3, 2), 0.7)  # shorter than the video: the last row is held
    offline = pipe("anna", pcm16.astype(np.float32) / 32768.0, sample_rate=16000, pose=pose, eyes=eyes, batch_size=1)
    session = StreamingSession(pipe, "anna", pose=pose, eyes=eyes)
    frames = push_in_chunks(session, pcm16, [640])
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)
    np.testing.assert_allclose(np.stack([f.pose for f in frames]), offline.pose)
    with pytest.raises(UserError, match="pose"):
        StreamingSession(pipe, "anna", pose=np.zeros((4, 2)))


def test_other_sample_rates_are_resampled(pipe):
    pcm48 = np.repeat(noise_speech(1.0), 3)
    session = StreamingSession(pipe, "anna", sample_rate=48000)
    frames = push_in_chunks(session, pcm48, [960])
    assert session.samples == pytest.approx(16000, abs=2)
    assert len(frames) == 25


def test_onnx_stream_equals_onnx_offline(checkpoint):
    pipe = APB2FacePipeline.from_pretrained(checkpoint, backend="onnx")
    pcm = noise_speech(1.2, seed=9)
    offline = pipe("anna", pcm, sample_rate=16000, seed=2, batch_size=1)
    frames = push_in_chunks(StreamingSession(pipe, "anna", seed=2), pcm, [320])
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)


def test_long_stream_has_no_drift_and_flat_memory(checkpoint):
    """A minute of audio pushed as fast as possible in 20 ms chunks (RUN_SLOW=1: twelve minutes)."""
    minutes = 12 if os.environ.get("RUN_SLOW") == "1" else 1
    loaded = load_onnx(checkpoint, threads=1)
    pipe = APB2FacePipeline(None, loaded.config, loaded.references, loaded.meta, backend=loaded.backend)
    session = StreamingSession(pipe, "anna", seed=1)
    chunk = 320
    second = noise_speech(1.0, seed=11)  # the same second over and over: no big input array in memory
    count, lags = 0, set()
    memory = {}
    tracemalloc.start()
    try:
        for s in range(minutes * 60):
            for lo in range(0, A.SAMPLE_RATE, chunk):
                for frame in session.push(second[lo : lo + chunk]):
                    assert frame.index == count and frame.timestamp == count / 25.0
                    lags.add(frame.ready_sample - count * A.SAMPLE_RATE // 25)
                    count += 1
            if s in (20, minutes * 60 - 1):
                memory[s] = tracemalloc.get_traced_memory()[0]
        tail = session.finish()
    finally:
        tracemalloc.stop()
    total = minutes * 60 * 25
    assert count + len(tail) == total
    assert tail[-1].timestamp == (total - 1) / 25.0
    # every frame came out exactly the same number of samples after its own time: no drift
    assert lags == {int(0.18 * A.SAMPLE_RATE)}
    # Python/numpy memory held by the session does not grow with the stream's length
    growth = memory[minutes * 60 - 1] - memory[20]
    assert growth < 256 * 1024, f"memory grew by {growth} bytes"


def test_simulated_live_latency_is_measured(pipe):
    session = StreamingSession(pipe, "anna")
    now = [0.0]
    timing = simulate_live(
        session, noise_speech(1.0), chunk_ms=20, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    # with a clock that only advances while waiting, latency is the algorithmic part alone
    assert timing.frames == 21  # frames 0..20: frame n is ready at n * 40 ms + 180 ms <= 1 s
    np.testing.assert_allclose(timing.latencies_ms, 180.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ silence


def demo_checkpoint() -> Path | None:
    path = Path(os.environ.get("APB2FACE_DEMO_CHECKPOINT", default_checkpoint() or "no-demo-checkpoint"))
    return path if (path / "config.json").is_file() else None


# spread of mouth_opening read by mediapipe on generated 128 px faces whose pixels do not move (<= 0.5 grey levels):
# up to 0.04 frame to frame on the demo model, so openings are compared with this allowance
DETECTOR_NOISE = 0.03
# mean absolute frame-to-frame change (grey levels) inside the mouth box that counts as a still mouth; real
# speaking frames of the built-in data change by 4-8 levels (median) and 12-19 (95th percentile)
STILL_MOUTH_LEVELS = 1.5
MOUTH_POINTS = [61, 291, 0, 17, 13, 14]  # lip corners, outer and inner lip midpoints (mediapipe mesh)


def upscaled_mesh(mesh, image: np.ndarray) -> np.ndarray | None:
    """Face mesh points of a small crop, read at twice the size (mediapipe reads small faces better so)."""
    if image.shape[0] >= 256:
        return mesh.detect(image)
    found = mesh.detect(np.kron(image, np.ones((2, 2, 1), np.uint8)))
    return None if found is None else found / 2


def closed_mouth_range(identity: str, dataset: Path) -> tuple[float, float, str]:
    """The identity's closed-mouth openings as the face mesh reads them: (median, 95th percentile) over its quiet
    training frames (audio RMS in the clip's lowest fifth).

    Read with the same detector, on the same kind of image, as the generated frames: mediapipe reads some synth
    people's closed lips as parted (id02/id04 show teeth between closed lips: 0.17-0.20 on their real quiet frames,
    whose renderer truth is 0.00), so a range taken from the renderer's landmarks would call their closed mouths open.
    """
    from apb2face.data.face import FaceMesh, mouth_opening
    from apb2face.data.format import Dataset

    data = Dataset(dataset)
    quiet = []
    with FaceMesh(video=False) as mesh:
        for record in data.clips(identity=identity)[:6]:
            clip = data.load_clip(record)
            rms = A.rms_per_frame(clip.audio, len(clip.landmarks), clip.fps, clip.sample_rate)
            for i in np.flatnonzero(rms <= np.percentile(rms, 20))[::3]:
                found = upscaled_mesh(mesh, np.asarray(clip.frames[i]))
                if found is not None:
                    quiet.append(mouth_opening(found))
    assert len(quiet) >= 10, f"{identity}: only {len(quiet)} quiet frames with a face in {dataset}"
    return (
        float(np.median(quiet)),
        float(np.percentile(quiet, 95)),
        f"face mesh on {len(quiet)} quiet frames of {dataset}",
    )


def builtin_data_of(checkpoint: Path, out: Path) -> Path:
    """The checkpoint's built-in training people, rendered again from the `apb2face synth` recipe in its model card
    (the same seed, counts and size give the same people and sentences), so that each person's closed-mouth range is
    read from the frames the model learned from, on any machine."""
    import re

    from apb2face.cli.main import main

    card = (checkpoint / "README.md").read_text()
    recipe = re.search(
        r"apb2face synth \S+ (--identities \d+) (--clips-per-identity \d+) (--size \d+) (--seed \d+)", card
    )
    if recipe is None:
        pytest.skip(f"{checkpoint / 'README.md'} records no `apb2face synth` recipe to rebuild its training people")
    args = [arg for group in recipe.groups() for arg in group.split()]
    assert main(["synth", "--out", str(out), *args, "--no-videos"]) == 0
    return out


# A quality check of the trained demo model (about a minute), so it runs with the slow set (RUN_SLOW=1).
@pytest.mark.slow
@pytest.mark.skipif(
    demo_checkpoint() is None,
    reason="needs the trained demo checkpoint (package data): silence behaviour is a property of a trained model",
)
def test_silence_gives_a_closed_still_mouth(tmp_path: Path):
    from apb2face.data.synth.speech import synthesize
    from apb2face.models.modeling import load_config

    checkpoint = demo_checkpoint()
    dataset = os.environ.get("APB2FACE_DEMO_DATA") or load_config(checkpoint)[1].get("meta", {}).get("dataset")
    if dataset and not Path(dataset).is_absolute():  # checkpoints record the dataset's name: look under data/
        dataset = str(REPO / "data" / dataset)
    if not dataset or not (Path(dataset) / "dataset.json").is_file():
        dataset = str(builtin_data_of(checkpoint, tmp_path / "builtin"))
    pipe = APB2FacePipeline.from_pretrained(checkpoint, backend="onnx")
    speech = synthesize("Hello there, how are you doing today?").audio
    pcm = np.concatenate([speech, np.zeros(3 * A.SAMPLE_RATE, np.float32), speech])
    first_silent = len(speech) / A.SAMPLE_RATE
    # frames whose whole audio window (0.52 s before, 0.12 s after the frame) lies in the silence
    window_before = (pipe.config.audio_window - pipe.config.audio_lookahead) / A.FEATURE_RATE
    window_after = pipe.config.audio_lookahead / A.FEATURE_RATE
    silent = (first_silent + window_before + 0.05, first_silent + 3.0 - window_after - 0.05)
    failures = [
        problem for identity in pipe.identities for problem in silence_problems(pipe, identity, pcm, silent, dataset)
    ]
    assert not failures, "; ".join(failures)


def silence_problems(
    pipe: APB2FacePipeline, identity: str, pcm: np.ndarray, silent: tuple[float, float], dataset: str
) -> list[str]:
    """What is wrong with `identity`'s mouth during the `silent` stretch of `pcm` (empty: closed and still)."""
    from apb2face.data.face import FaceMesh, mouth_opening

    closed_median, closed_max, source = closed_mouth_range(identity, Path(dataset))
    frames = push_in_chunks(StreamingSession(pipe, identity, seed=0), pcm, [320])
    quiet_frames = [f.image for f in frames if silent[0] <= f.timestamp <= silent[1]]
    assert len(quiet_frames) >= 40
    with FaceMesh(video=False) as mesh:
        points = [upscaled_mesh(mesh, image) for image in quiet_frames]
    found = [p for p in points if p is not None]
    if len(found) < 0.9 * len(points):
        return [f"{identity}: no face found in {len(points) - len(found)} of {len(points)} silent frames"]
    opening = np.array([mouth_opening(p) for p in found])
    # still: the pixels of the mouth box barely change from frame to frame
    lips = np.median([p[MOUTH_POINTS, :2] for p in found], axis=0)
    (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
    pad = 0.25 * (x1 - x0)
    size = quiet_frames[0].shape[0]
    rows = slice(max(0, int(y0 - pad)), min(size, int(np.ceil(y1 + pad))))
    cols = slice(max(0, int(x0 - pad)), min(size, int(np.ceil(x1 + pad))))
    boxes = np.stack([f[rows, cols].astype(np.float32) for f in quiet_frames])
    change = np.abs(np.diff(boxes, axis=0)).mean(axis=(1, 2, 3))
    summary = (
        f"{identity}: silence opening median {np.median(opening):.3f} p95 {np.percentile(opening, 95):.3f} "
        f"vs closed median {closed_median:.3f} p95 {closed_max:.3f} ({source}); "
        f"mouth-box change p95 {np.percentile(change, 95):.2f} "
        "levels/frame"
    )
    print(summary)
    problems = []
    # closed: within the identity's own closed-mouth range as the detector reads it (the median inside it, the
    # 95th percentile inside it plus the detector's frame-to-frame spread)
    if np.median(opening) > closed_max or np.percentile(opening, 95) > closed_max + DETECTOR_NOISE:
        problems.append(f"mouth open in silence ({summary})")
    if np.percentile(change, 95) > STILL_MOUTH_LEVELS or np.median(np.abs(np.diff(opening))) > DETECTOR_NOISE:
        problems.append(f"mouth jitters in silence ({summary})")
    return problems


# ------------------------------------------------------------------------------------------------ overload


class VirtualTime:
    """A wall clock that moves only when the test says: waiting for audio, and rendering (a chosen cost per frame)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class CostlyPipeline:
    """The real pipeline whose model step takes `cost(now)` seconds of virtual time: a machine that slows down."""

    def __init__(self, pipe: APB2FacePipeline, time: VirtualTime, cost) -> None:
        self.pipe, self.time, self.cost = pipe, time, cost

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)

    def step(self, *args):
        self.time.now += self.cost(self.time.now)
        return self.pipe.step(*args)


def live_run(pipe, pcm: np.ndarray, cost, realtime: bool):
    time = VirtualTime()
    session = StreamingSession(CostlyPipeline(pipe, time, cost), "anna", seed=3, realtime=realtime, clock=time.clock)
    frames: list = []
    timing = simulate_live(session, pcm, chunk_ms=20, clock=time.clock, sleep=time.sleep, on_frame=frames.append)
    return session, timing, frames


LOAD = (2.0, 5.0)  # seconds of stream time during which a frame costs 1.6 frame periods instead of a quarter


def load_cost(now: float) -> float:
    return 0.064 if LOAD[0] <= now < LOAD[1] else 0.010


def test_realtime_session_repeats_frames_under_overload_and_recovers(pipe, caplog):
    pcm = noise_speech(8.0, seed=4)
    calm, calm_timing, calm_frames = live_run(pipe, pcm, lambda now: 0.010, realtime=True)
    # without load nothing is dropped and the stream is the ordinary one
    assert calm.repeated_frames == 0 and calm.overloads == 0 and calm_timing.repeated == 0
    reference = StreamingSession(pipe, "anna", seed=3)
    plain = [f for lo in range(0, len(pcm), 320) for f in reference.push(pcm[lo : lo + 320])]
    np.testing.assert_array_equal(np.stack([f.image for f in calm_frames]), np.stack([f.image for f in plain]))

    # the same load without real-time mode: latency grows without bound (here to over a second)
    _, behind, _ = live_run(pipe, pcm, load_cost, realtime=False)
    assert behind.latencies_ms.max() > 1000

    caplog.set_level("INFO", logger="apb2face.inference.streaming")
    loaded, timing, frames = live_run(pipe, pcm, load_cost, realtime=True)
    # every due frame comes out, with the unloaded indices and timestamps
    assert [(f.index, f.timestamp) for f in frames] == [(f.index, f.timestamp) for f in calm_frames]
    repeated = [f for f in frames if f.repeated]
    assert loaded.repeated_frames == timing.repeated == len(repeated) > 0
    # latency stays bounded: under the look-ahead, the 20 ms chunk and max_lag_s (2 frame periods) plus one frame
    budget_ms = (session_lookahead := calm.lookahead_s) * 1000 + 20 + 80
    assert np.percentile(timing.latencies_ms, 95) < budget_ms + 40, np.percentile(timing.latencies_ms, 95)
    assert timing.latencies_ms.max() < budget_ms + 80
    # said once: one warning for the episode, one line when it caught up
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert loaded.overloads == 1 and len(warnings) == 1 and "repeating frames" in warnings[0].getMessage()
    assert any("caught up" in r.getMessage() for r in caplog.records)
    # repeated frames show the previous image; they fall inside the loaded stretch only
    by_index = {f.index: f for f in frames}
    for f in repeated:
        np.testing.assert_array_equal(f.image, by_index[f.index - 1].image)
        assert LOAD[0] - session_lookahead - 0.2 <= f.timestamp <= LOAD[1]
    # recovered: after the load, every frame is rendered again, equal to the unloaded stream's (motion kept pace)
    after = [i for i, f in enumerate(frames) if f.timestamp > LOAD[1]]
    assert len(after) > 50 and not any(frames[i].repeated for i in after)
    for i in after:
        np.testing.assert_array_equal(frames[i].image, calm_frames[i].image)
        np.testing.assert_array_equal(frames[i].pose, calm_frames[i].pose)
    # the face kept moving during the load: some frames were rendered there
    during = [f for f in frames if LOAD[0] + 0.5 <= f.timestamp <= LOAD[1] - 0.5]
    assert 0 < sum(f.repeated for f in during) < len(during)


def test_realtime_mode_catches_a_caller_that_pushes_late(pipe):
    """The default arrival time comes from the audio clock: chunks pushed in a burst after a stall are seen late."""
    time = VirtualTime()
    session = StreamingSession(pipe, "anna", realtime=True, clock=time.clock)
    pcm = noise_speech(3.0)
    frames = []
    for k, lo in enumerate(range(0, len(pcm), 320)):
        time.now = (lo + 320) / 16000 + (0.5 if 40 <= k < 60 else 0.0)  # chunks 40-59 arrive 0.5 s late
        frames += session.push(pcm[lo : lo + 320])
    repeated = [f.index for f in frames if f.repeated]
    assert repeated and session.overloads == 1
    # the late frames are those made ready by chunks 40-59 (20 ms each, 180 ms after their frame), no others
    assert all(0.8 <= i / 25 + 0.18 <= 1.2 + 1e-9 for i in repeated)
    with pytest.raises(UserError, match="max_lag_s"):
        StreamingSession(pipe, "anna", realtime=True, max_lag_s=0)


def test_given_arrival_times_allow_gaps_and_pace_a_fast_sender(pipe):
    pcm = noise_speech(3.0)
    chunks = range(0, len(pcm), 320)
    # a source that pauses for a second mid-stream (stream time stops too): nothing is late, nothing repeated
    time = VirtualTime()
    paused = StreamingSession(pipe, "anna", realtime=True, clock=time.clock)
    for k, lo in enumerate(chunks):
        time.now = (lo + 320) / 16000 + (1.0 if k >= 50 else 0.0)
        paused.push(pcm[lo : lo + 320], arrived=time.now)
    assert paused.repeated_frames == 0
    # the same pause with no arrival times looks like a caller a second behind its audio clock
    time = VirtualTime()
    guessed = StreamingSession(pipe, "anna", realtime=True, clock=time.clock)
    for k, lo in enumerate(chunks):
        time.now = (lo + 320) / 16000 + (1.0 if k >= 50 else 0.0)
        guessed.push(pcm[lo : lo + 320])
    assert guessed.repeated_frames > 0
    # a sender ten times faster than speech, received at once, rendered at 30 ms a frame: served at the speed of
    # speech, so the frames keep up with the speech pace (none repeated) although all audio "arrived" early
    time = VirtualTime()
    fast = StreamingSession(CostlyPipeline(pipe, time, lambda now: 0.030), "anna", realtime=True, clock=time.clock)
    for lo in chunks:
        time.now = max(time.now, (lo + 320) / 16000 / 10)
        fast.push(pcm[lo : lo + 320], arrived=(lo + 320) / 16000 / 10)
    assert fast.repeated_frames == 0 and fast.next_frame > 60


def test_audio_that_is_always_late_still_moves_the_face(pipe):
    """On a starved machine even fresh audio is pushed late (here 40 ms, a render takes 50 ms): frames are still
    rendered at the rate the machine allows, with bounded latency, instead of one frozen picture."""
    time = VirtualTime()
    session = StreamingSession(CostlyPipeline(pipe, time, lambda now: 0.050), "anna", realtime=True, clock=time.clock)
    pcm = noise_speech(6.0)
    frames, latencies = [], []
    for lo in range(0, len(pcm), 320):
        due = (lo + 320) / 16000
        time.now = max(time.now, due + 0.040)
        out = session.push(pcm[lo : lo + 320], arrived=due)
        frames += out
        latencies += [time.now - f.timestamp for f in out]
    rendered = np.array([not f.repeated for f in frames])
    assert 0 < session.repeated_frames < len(frames)
    for second in range(5):  # the face moves in every second of the stream
        assert rendered[second * 25 : (second + 1) * 25].sum() >= 5
    # look-ahead, a 20 ms chunk, lateness within 1.25 x max_lag_s (2 frame periods), one render
    assert max(latencies) <= session.lookahead_s + 0.020 + 1.25 * 0.080 + 0.050 + 1e-9


# ------------------------------------------------------------------------------------------------ frame-parallel


@pytest.mark.parametrize("workers", [2, 3])
def test_frame_parallel_stream_gives_the_same_frames_in_order(pipe, workers):
    pcm = noise_speech(2.3)
    offline = pipe("anna", pcm, sample_rate=16000, seed=5, batch_size=1)
    session = StreamingSession(pipe, "anna", seed=5, workers=workers)
    frames, lo, sizes, k = [], 0, [320, 640, 480, 17, 1000], 0
    while lo < len(pcm):
        frames += session.push(pcm[lo : lo + sizes[k % len(sizes)]])
        assert session.next_frame - len(frames) <= workers * IN_FLIGHT_PER_WORKER  # a bounded queue
        lo += sizes[k % len(sizes)]
        k += 1
    frames += session.finish()
    assert [f.index for f in frames] == list(range(len(offline.frames)))
    assert [f.timestamp for f in frames] == [i / 25.0 for i in range(len(frames))]
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)
    np.testing.assert_array_equal(np.stack([f.landmarks for f in frames]), offline.landmarks)
    np.testing.assert_array_equal(np.stack([f.pose for f in frames]), offline.pose)
    assert [f.ready_sample for f in frames] == [
        f.ready_sample for f in push_in_chunks(StreamingSession(pipe, "anna", seed=5), pcm, sizes)
    ]  # each frame is reported ready when its audio was, not when a worker finished it


def test_frame_parallel_onnx_stream_equals_onnx_offline(checkpoint):
    pipe = APB2FacePipeline.from_pretrained(checkpoint, backend="onnx")
    pcm = noise_speech(1.2, seed=9)
    offline = pipe("anna", pcm, sample_rate=16000, seed=2, batch_size=1)
    frames = push_in_chunks(StreamingSession(pipe, "anna", seed=2, workers=2), pcm, [320])
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), offline.frames)


def test_frame_parallel_settings_and_worker_errors(pipe, monkeypatch):
    assert StreamingSession(pipe, "anna", workers=4, realtime=True).workers == 1  # live: one frame at a time
    with pytest.raises(UserError, match="workers must be at least 1"):
        StreamingSession(pipe, "anna", workers=0)
    calls = []

    def failing_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the backend failed")
        return APB2FacePipeline.step(pipe, *args)

    monkeypatch.setattr(pipe, "step", failing_step)
    session = StreamingSession(pipe, "anna", workers=2)
    with pytest.raises(RuntimeError, match="the backend failed"):  # raised in the caller's thread, not lost
        push_in_chunks(session, noise_speech(1.0), [320])
