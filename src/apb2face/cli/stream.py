"""Stream: drive a face with live audio and emit 25 fps frames as the audio arrives (bounded look-ahead).

--audio-in - reads raw PCM from stdin: signed 16-bit little-endian mono at --sample-rate (default 16000), e.g.
`arecord -f S16_LE -r 16000 -c 1 -t raw | apb2face stream --reference woman1 --audio-in - --out live.mp4`.
A file is decoded like `generate` does and fed in --chunk-ms chunks (as fast as possible, or at the speed of speech
with --realtime); its frames equal `generate`'s for the same seed. A live source (stdin, or --realtime) that the
machine cannot keep up with repeats frames rather than falling behind (docs/realtime.md, "Overload").
--out OUT.mp4 writes video + audio incrementally; --out - writes raw rgb24 frames to stdout (e.g. into `ffplay -f
rawvideo -pixel_format rgb24 -video_size SxS -framerate 25 -i -`). The summary (frames, speed, look-ahead, live
latency, repeated frames) goes to stderr.
--full-frame streams over the identity's avatar loop (as `generate --full-frame` without --driving): each frame is
the loop's frame, at its size and frame rate, with the face pasted in (--region face|mouth); see docs/full-frame.md.
--scene IMAGE|VIDEO with one --speaker NAME=AUDIO per person streams a scene of several people (as `generate --scene`
with files): the files are fed in --chunk-ms chunks, the speakers taking turns as live streams arrive, and the MP4
holds full scene frames (equal to `generate --scene --batch-size 1`'s) with the speakers' mix; see docs/scene.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from apb2face.cli.common import (
        add_allow_unknown_argument,
        add_assign_argument,
        add_backend_arguments,
        add_checkpoint_argument,
        add_scene_arguments,
    )

    parser.add_argument(
        "--reference",
        metavar="IMAGE|IDENTITY",
        help="a photo with a face or the name of an identity bundled in the checkpoint; required unless --scene",
    )
    parser.add_argument(
        "--audio-in",
        metavar="FILE|-",
        help="driving audio: a file FFmpeg reads, or - for raw s16le mono PCM on stdin; required unless --scene",
    )
    parser.add_argument(
        "--out",
        metavar="OUT.mp4|-",
        help="write an MP4 (video + audio), or - for raw rgb24 frames "
        "on stdout; without it frames are only counted and timed",
    )
    add_checkpoint_argument(parser)
    add_backend_arguments(parser)
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate of PCM on stdin (default 16000)")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio chunk size fed per step (default 20)")
    parser.add_argument(
        "--realtime", action="store_true", help="feed a file at the speed of speech and report audio-to-frame latency"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the natural motion (default: 0)")
    add_allow_unknown_argument(parser)
    parser.add_argument("--pose", type=Path, metavar="FILE", help="head pose per frame: yaw,pitch,roll degrees")
    parser.add_argument("--blink", type=Path, metavar="FILE", help="eye openness per frame: left,right in [0, 1]")
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate (default: 25)")
    parser.add_argument(
        "--full-frame",
        action="store_true",
        help="stream full frames over the identity's avatar loop (its size and frame rate; --fps is not used)",
    )
    parser.add_argument(
        "--region",
        choices=("face", "mouth"),  # apb2face.inference.compose.REGIONS (not imported here: --help stays fast)
        default=None,
        help="with --full-frame: paste the whole face, or only the mouth (the real eyes stay) (default: face)",
    )
    scene = add_scene_arguments(
        parser,
        speaker_metavar="NAME=AUDIO",
        speaker_help="with --scene, repeatable: that person's own speech, streamed in turns with the other speakers'",
    )
    add_assign_argument(scene)


def run(args: argparse.Namespace) -> int:
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.inference.streaming import StreamingSession

    check_arguments(args)
    if args.scene is not None:
        return scene(args)
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, backend=args.backend, int8=args.int8)
    live = args.realtime or args.audio_in == "-"  # a live source: repeat frames rather than fall behind it
    if args.full_frame:
        session = avatar_session(args, pipe, live)
        source = open_source(args, pipe, session.fps)
    else:
        source = open_source(args, pipe, args.fps)
        motion = {"seed": args.seed, "pose": args.pose, "eyes": args.blink}
        session = StreamingSession(
            pipe,
            args.reference,
            fps=args.fps,
            sample_rate=source.rate,
            realtime=live,
            allow_unknown=args.allow_unknown,
            **motion,
        )
    log.info(
        "streaming %s with %s (%s): look-ahead %.0f ms of audio per frame",
        args.reference,
        args.checkpoint or "the demo checkpoint",
        args.backend,
        session.lookahead_s * 1000,
    )
    with open_sink(args.out, session.fps, source) as sink:
        timing = stream_frames(session, source, sink)
    print(summary(timing, session, args), file=sys.stderr)
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag, and the output path, checked before the model loads."""
    from apb2face.cli.common import check_backend, check_not_an_input, check_writable
    from apb2face.inference.pipeline import check_fps

    check_backend(args)
    check_fps(args.fps)
    if args.scene is not None:
        speakers = check_scene_arguments(args)
        inputs: tuple[Path | str | None, ...] = (args.scene, *(path for _name, path in speakers))
    else:
        check_single_face(args)
        inputs = (None if args.audio_in == "-" else args.audio_in, args.reference, args.pose, args.blink)
    if not 5.0 <= args.chunk_ms <= 1000.0:
        raise UserError(f"--chunk-ms must be between 5 and 1000, got {args.chunk_ms}")
    if not 8000 <= args.sample_rate <= 192000:
        raise UserError(f"--sample-rate must be between 8000 and 192000, got {args.sample_rate}")
    if args.realtime and args.audio_in == "-":
        raise UserError("--realtime applies to file input (stdin already arrives in real time)")
    if args.full_frame and (args.pose is not None or args.blink is not None):
        raise UserError("--pose and --blink cannot be used with --full-frame (the avatar loop gives the motion)")
    if args.region is not None and not args.full_frame:
        raise UserError("--region needs --full-frame")
    if args.out not in (None, "-"):
        out = Path(args.out)
        if out.suffix.lower() != ".mp4":
            raise UserError("output must be an .mp4 file (or - for raw frames on stdout)", out)
        check_writable(out)
        check_not_an_input(out, *inputs)
    if args.scene is not None and not args.scene.is_file():
        raise UserError("file not found", args.scene)


def check_single_face(args: argparse.Namespace) -> None:
    """Without --scene: one --reference and one --audio-in; the scene flags need --scene."""
    from apb2face.cli.common import check_no_scene_flags

    check_no_scene_flags(args)
    if args.reference is None:
        raise UserError("--reference is required (or --scene with --speaker NAME=AUDIO for several people)")
    if args.audio_in is None:
        raise UserError("--audio-in is required (a file, or - for PCM on stdin)")


@dataclass
class Source:
    """Where the PCM comes from: chunks at `rate`, the frame count when known (a file), and the audio to mux into an
    MP4 (a file's own audio, as `generate` muxes it; None: the chunks themselves as they arrive)."""

    name: str
    chunks: Iterator[Any]  # PCM arrays; for a scene (speaker, PCM) pairs (its mix is muxed: mux_audio is set)
    rate: int
    num_frames: int | None = None
    mux_audio: tuple[np.ndarray, int] | None = None


def avatar_session(args: argparse.Namespace, pipe: Any, live: bool) -> Any:
    """A session over the identity's avatar loop (apb2face.inference.avatar_stream), the loop made and tracked first
    if this machine has not yet."""
    from apb2face.inference.avatar import load_avatar
    from apb2face.inference.avatar_stream import AvatarSession
    from apb2face.inference.compose import ComposeConfig
    from apb2face.inference.revoice import RevoiceConfig

    avatar = load_avatar(pipe, args.reference, RevoiceConfig())
    rate = args.sample_rate if args.audio_in == "-" else 16000  # a file is decoded to 16 kHz (open_source)
    compose = ComposeConfig(region=args.region or "face")
    return AvatarSession(pipe, avatar, compose=compose, sample_rate=rate, realtime=live)


def open_source(args: argparse.Namespace, pipe: Any, fps: float) -> Source:
    from apb2face.data import audio as A

    if args.audio_in == "-":
        return Source("stdin", _stdin_chunks(_stdin_fd(), args.sample_rate, args.chunk_ms), args.sample_rate)
    driving = pipe.prepare_audio(args.audio_in, None, fps)
    pcm = A.resample(driving.audio, driving.sample_rate, A.SAMPLE_RATE)  # exactly what `generate` analyses
    chunks = _file_chunks(pcm, args.chunk_ms, args.realtime)
    return Source(args.audio_in, chunks, A.SAMPLE_RATE, driving.num_frames, (driving.audio, driving.sample_rate))


class Sink:
    """Where frames go: nowhere (counted and timed only), raw rgb24 on stdout, or an MP4 with its audio."""

    def audio(self, chunk: np.ndarray) -> None:
        pass

    def frame(self, image: np.ndarray) -> None:
        pass


class RawSink(Sink):
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def frame(self, image: np.ndarray) -> None:
        self.stream.write(image.tobytes())
        self.stream.flush()


class Mp4Sink(Sink):
    def __init__(self, writer: Any, mux_chunks: bool) -> None:
        self.writer = writer
        self.mux_chunks = mux_chunks

    def audio(self, chunk: np.ndarray) -> None:
        if self.mux_chunks:
            self.writer.write_audio(chunk)

    def frame(self, image: np.ndarray) -> None:
        self.writer.write_frame(image)


@contextlib.contextmanager
def open_sink(out: str | None, fps: float, source: Source, **encoding: Any) -> Iterator[Sink]:
    """The MP4 is created here, before the first chunk is read: an output that cannot be created fails at once, and
    nothing is left of it if the stream fails. encoding: Mp4Writer's size, crf and preset (default: its own)."""
    from apb2face.data.video import Mp4Writer

    if out is None:
        yield Sink()
    elif out == "-":
        yield RawSink(sys.stdout.buffer)
    else:
        rate = source.mux_audio[1] if source.mux_audio else source.rate
        with Mp4Writer(out, fps=fps, audio_rate=rate, **encoding) as writer:
            if source.mux_audio is not None:
                writer.write_audio(source.mux_audio[0])
            yield Mp4Sink(writer, mux_chunks=source.mux_audio is None)


@dataclass
class Timing:
    frames: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # frame ready minus its own time, from the first chunk


def stream_frames(session: Any, source: Source, sink: Sink) -> Timing:
    """Push every chunk, hand each frame to the sink as soon as it is ready, then the frames the end completes."""
    from tqdm import tqdm

    timing = Timing()
    start = time.perf_counter()
    with tqdm(total=source.num_frames, desc="stream", unit="frame", leave=False) as progress:
        for chunk in source.chunks:
            sink.audio(chunk)
            for frame in session.push(chunk):
                timing.latencies_ms.append((time.perf_counter() - start - frame.timestamp) * 1000)
                sink.frame(picture(frame))
                progress.update()
        if session.samples == 0:  # the offline pipeline refuses empty audio too: no frame can show no audio
            raise UserError("no audio received (the input ended before its first sample)", source.name)
        for frame in session.finish(source.num_frames):
            sink.frame(picture(frame))
            progress.update()
    timing.frames = session.next_frame
    timing.wall_s = time.perf_counter() - start
    return timing


def picture(frame: Any) -> np.ndarray:
    """What a frame shows: the crop, a full-frame stream's full frame, or a scene's frame (SceneFrame.image)."""
    full = getattr(frame, "full_frame", None)
    return frame.image if full is None else full


def summary(timing: Timing, session: Any, args: argparse.Namespace) -> str:
    from apb2face.data import audio as A

    audio_s = session.samples / A.SAMPLE_RATE
    fps = timing.frames / max(timing.wall_s, 1e-9)
    text = f"{timing.frames} frames for {audio_s:.2f} s of audio in {timing.wall_s:.2f} s ({fps:.1f} fps)"
    if args.realtime:  # only a paced source gives meaningful latencies (a pipe may deliver faster than speech)
        latencies = timing.latencies_ms
        live = np.asarray(latencies[len(latencies) // 10 :] or latencies)  # skip the start-up tenth
        if live.size:
            p50, p95 = np.percentile(live, [50, 95])
            text += f"; audio-to-frame latency p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    if getattr(session, "blended", 0):  # a full-frame stream (AvatarSession): what pasting cost per frame
        paste_ms = session.blend_seconds / session.blended * 1000
        text += f"; {session.size[1]}x{session.size[0]} full frames, paste {paste_ms:.1f} ms/frame"
    if session.realtime:
        text += f"; {session.repeated_frames} frames repeated to keep up, in {session.overloads} overload episode(s)"
    return text + (f"; wrote {args.out}" if args.out not in (None, "-") else "")


def _file_chunks(pcm: np.ndarray, chunk_ms: float, realtime: bool) -> Iterator[np.ndarray]:
    """Chunks of 16 kHz PCM along its last axis (a scene's tracks, (speakers, samples), are cut together)."""
    from apb2face.data import audio as A

    length = pcm.shape[-1]
    step = max(1, int(round(chunk_ms / 1000 * A.SAMPLE_RATE)))
    start = time.perf_counter()
    for lo in range(0, length, step):
        if realtime:  # a chunk is available once its last sample has been spoken
            wait = start + min(lo + step, length) / A.SAMPLE_RATE - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield pcm[..., lo : lo + step]


def _stdin_fd() -> int:
    """The file descriptor of stdin; a closed stdin (Python sets sys.stdin to None) is a user error."""
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        raise UserError("stdin is closed: pipe raw s16le mono PCM into --audio-in -", "stdin") from None
    return fd


def _stdin_chunks(fd: int, rate: int, chunk_ms: float) -> Iterator[np.ndarray]:
    """Raw s16le mono from stdin, returned as soon as bytes arrive (at most one chunk at a time)."""
    size = max(2, int(round(chunk_ms / 1000 * rate)) * 2)
    carry = b""
    while True:
        try:
            data = os.read(fd, size)
        except OSError as exc:
            raise UserError(f"cannot read audio ({exc.strerror})", "stdin") from None
        if not data:
            break
        data = carry + data
        whole = len(data) // 2 * 2
        carry = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)


# ------------------------------------------------------------------------------------------------------- --scene


def check_scene_arguments(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """--scene takes its faces, size and motion from the scene and one audio file per --speaker NAME=AUDIO (parsed
    as `generate --scene` parses them); returns the (name, file) pairs."""
    from apb2face.cli.common import refuse_with_scene
    from apb2face.inference.scene import check_names, parse_speaker

    given = (
        ("--reference", args.reference), ("--audio-in", args.audio_in), ("--pose", args.pose),
        ("--blink", args.blink), ("--region", args.region),
    )  # fmt: skip
    refuse_with_scene(given, "the scene gives the faces, --speaker the audio")
    if args.full_frame:
        raise UserError("--full-frame cannot be used with --scene (a scene is always full frame)")
    if not args.speaker:
        raise UserError("--scene needs --speaker NAME=AUDIO (one per person who speaks)")
    speakers = [parse_speaker(text) for text in args.speaker]
    files = [(name, path) for name, path in speakers if path is not None]
    if len(files) != len(speakers):
        name = next(name for name, path in speakers if path is None)
        raise UserError(f"--speaker {name} needs =AUDIO: stream --scene takes one audio file per speaker")
    check_names([name for name, _path in files])
    return files


class SceneFeed:
    """A `SceneStreamingSession` as `stream_frames` and `summary` drive a session: a chunk is (speaker, PCM)."""

    def __init__(self, session: Any, realtime: bool) -> None:
        self.session = session
        self.realtime = realtime
        self.fps = session.fps
        self.lookahead_s = session.lookahead_s

    def push(self, chunk: tuple[str, np.ndarray]) -> list[Any]:
        name, pcm = chunk
        return self.session.push(name, pcm)

    def finish(self, num_frames: int | None) -> list[Any]:
        return self.session.finish(num_frames)

    @property
    def samples(self) -> int:
        """16 kHz samples of the longest stream."""
        return max(self.session.received.values())

    @property
    def next_frame(self) -> int:
        return self.session.next_frame

    @property
    def repeated_frames(self) -> int:
        """Real-time mode: the most frames any face showed again instead of rendering them."""
        return max(face.repeated_frames for face in self.session.sessions)

    @property
    def overloads(self) -> int:
        return max(face.overloads for face in self.session.sessions)


def scene_source(audio: Any, fps: float, chunk_ms: float, realtime: bool) -> Source:
    """The speakers' tracks (`SceneAudio`, padded to one length as `generate --scene` pads them) at 16 kHz as
    `generate` analyses them, cut into --chunk-ms chunks, each speaker's chunk in turn; the MP4 plays their mix."""
    from apb2face.data import audio as A

    tracks = np.stack([A.resample(track, audio.sample_rate, A.SAMPLE_RATE) for track in audio.tracks])
    chunks = (pair for block in _file_chunks(tracks, chunk_ms, realtime) for pair in zip(audio.names, block))
    frames = A.num_video_frames(len(audio.mix), fps, audio.sample_rate)
    return Source(", ".join(audio.names), chunks, A.SAMPLE_RATE, frames, (audio.mix, audio.sample_rate))


def scene(args: argparse.Namespace) -> int:
    """Stream every person of --scene (apb2face.inference.scene.SceneStreamingSession) into one output."""
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.inference.scene import SceneConfig, SceneStreamingSession, speakers_from_files

    config = SceneConfig(assign=args.assign, fps=args.fps, seed=args.seed)
    audio = speakers_from_files(check_scene_arguments(args))
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, backend=args.backend, int8=args.int8)
    with SceneStreamingSession(pipe, args.scene, audio.names, config, realtime=args.realtime) as session:
        feed = SceneFeed(session, args.realtime)
        source = scene_source(audio, session.fps, args.chunk_ms, args.realtime)
        log.info(
            "streaming %s (%dx%d) with %s (%s), speakers %s: look-ahead %.0f ms of audio per frame",
            args.scene,
            session.shape[1],
            session.shape[0],
            args.checkpoint or "the demo checkpoint",
            args.backend,
            ", ".join(audio.names),
            session.lookahead_s * 1000,
        )
        render = config.render  # the offline scene's encoder settings: the same frames decode to the same pixels
        encoding = {"size": session.shape, "crf": render.crf, "preset": render.preset}
        with open_sink(args.out, session.fps, source, **encoding) as sink:
            timing = stream_frames(feed, source, sink)
    print(summary(timing, feed, args), file=sys.stderr)
    return 0
