"""The one MP4 writer: frames and audio pushed as they come, correct timestamps, atomic, nothing left on failure."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from apb2face.data.video import Mp4Writer, frame_to_rgb, iter_frames, probe, rgb_to_yuv420p, write_video
from apb2face.errors import UserError
from apb2face.io import STALE_AFTER_S

RATE = 16000
FRAME = np.zeros((32, 32, 3), np.uint8)
# 57,014 samples at 16 kHz made the muxer fail on close when chunks carried no timestamps; the others are lengths
# drawn at random once (seed 0), odd and even, shorter and longer than an AAC frame, and whole multiples of chunks
STREAM_LENGTHS = (57014, 16000, 32000, 321, 1024, 2049, 12345, 40001, 63999, 71437)


def decoded_audio_samples(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(container.streams.audio[0]))


def tone(samples: int) -> np.ndarray:
    return (0.3 * np.sin(np.arange(samples) / 7.0)).astype(np.float32)


@pytest.mark.parametrize("samples", STREAM_LENGTHS)
@pytest.mark.parametrize("chunk", [320, 1000])
def test_incremental_writer_keeps_every_stream_length(tmp_path: Path, samples: int, chunk: int) -> None:
    out = tmp_path / "live.mp4"
    pcm = tone(samples)
    frames = max(1, samples * 25 // RATE)
    with Mp4Writer(out, fps=25, audio_rate=RATE, size=(32, 32)) as writer:
        for lo in range(0, samples, chunk):
            writer.write_audio(pcm[lo : lo + chunk])
            if writer.frames < lo * 25 // RATE:  # frames interleaved with audio, as a stream produces them
                writer.write_frame(FRAME)
        while writer.frames < frames:
            writer.write_frame(FRAME)
    info = probe(out)
    assert info.num_frames == frames and info.has_audio
    # the whole recording is there: AAC pads to whole 1024-sample frames (48 kHz), the resampler trims a few samples
    assert abs(decoded_audio_samples(out) - samples * 3) <= 2048
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]


def test_write_video_and_the_writer_take_int16_and_float_alike(tmp_path: Path) -> None:
    pcm = tone(8000)
    write_video(tmp_path / "float.mp4", [FRAME] * 12, fps=25, audio=pcm, sample_rate=RATE)
    with Mp4Writer(tmp_path / "int16.mp4", fps=25, audio_rate=RATE) as writer:
        writer.write_audio(np.round(pcm * 32767).astype(np.int16))  # before the first frame: held until then
        for _ in range(12):
            writer.write_frame(FRAME)
    assert probe(tmp_path / "float.mp4").num_frames == probe(tmp_path / "int16.mp4").num_frames == 12
    assert decoded_audio_samples(tmp_path / "float.mp4") == decoded_audio_samples(tmp_path / "int16.mp4")


def test_write_video_pushes_the_audio_beside_its_frames(tmp_path: Path, monkeypatch) -> None:
    """The muxer holds every packet that runs ahead of the other stream: audio given whole would wait in memory until
    the last frame (an hour of audio, an hour of packets; RSS grew with the duration). Pushed beside its frames, no
    more than one frame's worth of audio is ahead of the video at any time, and all of it is written."""
    pushes: list[tuple[int, int]] = []
    write_audio = Mp4Writer.write_audio

    def recording_write_audio(self: Mp4Writer, pcm: np.ndarray) -> None:
        pushes.append((self.frames, len(pcm)))
        write_audio(self, pcm)

    monkeypatch.setattr(Mp4Writer, "write_audio", recording_write_audio)
    frames = (np.full((32, 32, 3), i, np.uint8) for i in range(100))  # 4 s at 25 fps
    audio = np.sin(np.arange(4 * 16000 + 123) / 16000 * 2 * np.pi * 220).astype(np.float32) * 0.3
    write_video(tmp_path / "a.mp4", frames, fps=25, audio=audio, sample_rate=16000)
    assert sum(n for _, n in pushes) == len(audio)
    pushed = np.cumsum([n for _, n in pushes])
    assert all(total <= (frames_written + 1) * 640 for (frames_written, _), total in zip(pushes, pushed))
    assert probe(tmp_path / "a.mp4").num_frames == 100


def test_frames_are_cropped_to_even_sizes_and_decode_back(tmp_path: Path) -> None:
    frames = [np.full((33, 35, 3), 40 * k, np.uint8) for k in range(5)]
    assert write_video(tmp_path / "odd.mp4", frames, fps=25) == 5
    decoded = [f for _t, f in iter_frames(tmp_path / "odd.mp4")]
    assert len(decoded) == 5 and decoded[0].shape == (32, 34, 3)
    assert np.allclose([f.mean() for f in decoded], [0, 40, 80, 120, 160], atol=1.5)  # lossy, but these frames


def test_writer_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "w.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(out, fps=25, audio_rate=RATE, size=(64, 64)) as writer:
        writer.write_audio(tone(3200))
        writer.write_frame(np.zeros((64, 64, 3), np.uint8))
        raise RuntimeError("boom")
    with pytest.raises(UserError, match="no frames"), Mp4Writer(out, fps=25, audio_rate=RATE):
        pass
    with pytest.raises(ValueError, match="no frames"):
        write_video(out, [], fps=25)
    assert not list(tmp_path.iterdir())


def test_a_killed_writers_temporary_is_removed_by_the_next_writer(tmp_path: Path, caplog) -> None:
    out = tmp_path / "live.mp4"
    writer = (
        "import sys, numpy as np\n"
        "from apb2face.data.video import Mp4Writer\n"
        "with Mp4Writer(sys.argv[1], fps=25, audio_rate=16000, size=(32, 32)) as w:\n"
        "    for _ in range(50):\n"
        "        w.write_frame(np.zeros((32, 32, 3), np.uint8))\n"
        "    print('recording', flush=True)\n"
        "    sys.stdin.read()\n"  # recording until killed
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"recording"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".live.")]
    assert len(leftovers) == 1 and not out.exists()  # SIGKILL: nothing can clean up after itself
    then = time.time() - STALE_AFTER_S - 5
    os.utime(leftovers[0], (then, then))
    with caplog.at_level(logging.INFO, logger="apb2face.io"):
        write_video(out, [FRAME] * 3, fps=25)
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]
    assert any("left by an interrupted run" in r.getMessage() for r in caplog.records)


def test_a_decoded_frame_converts_back_to_its_own_yuv() -> None:
    """`rgb_to_yuv420p` inverts `frame_to_rgb` (each 2x2 block's chroma, repeated, is read back from one pixel),
    which swscale's filtered conversion does not do for colourful detail; the luma is the same either way."""
    rng = np.random.default_rng(0)
    yuv = np.concatenate([rng.integers(60, 190, (64, 96)), rng.integers(110, 146, (32, 96))]).astype(np.uint8)
    rgb = frame_to_rgb(av.VideoFrame.from_ndarray(yuv, format="yuv420p"))
    ours = rgb_to_yuv420p(rgb).to_ndarray().astype(int)
    swscale = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    assert np.abs(ours - yuv)[64:].mean() < 0.2 < 2.0 < np.abs(swscale - yuv)[64:].mean()
    assert np.abs(ours - swscale)[:64].mean() < 0.1


@pytest.mark.parametrize("sampled_chroma", [False, True])
def test_writer_converts_with_either_chroma(tmp_path: Path, sampled_chroma: bool) -> None:
    yy, xx = np.mgrid[0:48, 0:64]
    frame = np.stack([2 * xx, 3 * yy, 90 + 0 * xx], -1).astype(np.uint8)
    with Mp4Writer(tmp_path / "c.mp4", fps=25, crf=10, sampled_chroma=sampled_chroma) as writer:
        for _ in range(3):
            writer.write_frame(frame)
    decoded = [f for _t, f in iter_frames(tmp_path / "c.mp4")]
    assert len(decoded) == 3 and np.abs(decoded[0].astype(int) - frame).mean() < 2.0
