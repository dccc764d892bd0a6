"""Generate a talking-face video: a reference face (a bundled identity or any photo) driven by audio or text.

Writes an H.264 MP4 with the driving audio muxed as AAC; the video is as long as the audio (within one frame). Head
pose and blinks come from --pose/--blink files (CSV or .npy, one row per frame at 25 fps: yaw,pitch,roll degrees /
left,right openness 0..1), from a --driving video, or from the natural-motion generator (blinks every 2-6 s,
gentle head sway), in that order of precedence.

With --full-frame the --driving video itself is re-voiced: the output has the video's resolution and frame rate,
each frame the original with the face (--region face) or the lower face (--region mouth) replaced by the generated
one; the video plays forward and backward while the new audio lasts; frames without a face pass through; the new
audio replaces the old (--mix keeps the old under it). Without --driving, --full-frame renders over the identity's
avatar clip (avatars/NAME.mp4 in the checkpoint, which `apb2face enroll` keeps; a built-in person's is rendered from
the checkpoint's synth recipe once per machine), its face track cached after the first call. See docs/full-frame.md.

With --scene an image or video with several people is voiced: --speaker NAME=AUDIO per person (or --audio with one
channel per --speaker NAME, or --audio with a --timeline of start,end,name turns); each face is matched to a
checkpoint identity (--assign left-to-right: by position); faces without speech listen. See docs/scene.md.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from apb2face.cli.common import (
    add_allow_unknown_argument,
    add_assign_argument,
    add_backend_arguments,
    add_checkpoint_argument,
    add_scene_arguments,
    check_backend,
    check_no_scene_flags,
    check_not_an_input,
    check_writable,
    output_errors,
    refuse_with_scene,
    resize,
)
from apb2face.errors import UserError
from apb2face.inference.limits import DEFAULT_MAX_SECONDS, MAX_FPS, MIN_FPS
from apb2face.inference.motion import DEFAULT_SEED

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        metavar="IMAGE|IDENTITY",
        help="a photo with a face (any size) or the name of an identity bundled in the checkpoint "
        "(see `apb2face identities`); required unless --scene",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--audio", type=Path, metavar="FILE", help="driving audio: any format FFmpeg reads")
    source.add_argument("--text", metavar="TEXT", help="speak this text with espeak-ng and drive the face with it")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice for --text (default: en-us)")
    parser.add_argument("--driving", type=Path, metavar="VIDEO", help="take head pose and blinks from this video")
    parser.add_argument("--pose", type=Path, metavar="FILE", help="head pose per frame: yaw,pitch,roll degrees")
    parser.add_argument("--blink", type=Path, metavar="FILE", help="eye openness per frame: left,right in [0, 1]")
    add_checkpoint_argument(parser)
    add_allow_unknown_argument(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="OUT.mp4", help="output video")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed of the natural motion (default: {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--fps", type=float, default=25.0, help=f"output frame rate, {MIN_FPS:g} to {MAX_FPS:g} (default: 25)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        metavar="S",
        help=f"refuse driving audio longer than this (default: {DEFAULT_MAX_SECONDS:g} s)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="resize output frames to SIZE x SIZE for viewing (default: the model's resolution)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="frames per model call (default: 16)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_backend_arguments(parser)
    full = parser.add_argument_group("full frame (re-voice the --driving video)")
    full.add_argument(
        "--full-frame",
        action="store_true",
        help="write the --driving video at its own size and frame rate with the generated face pasted in",
    )
    full.add_argument(
        "--region",
        choices=("face", "mouth"),  # apb2face.inference.compose.REGIONS (not imported here: --help stays fast)
        default=None,
        help="with --full-frame: the whole face, or only the mouth (nose down; the real eyes stay) (default: face)",
    )
    full.add_argument("--mix", action="store_true", help="with --full-frame: keep the video's own audio under the new")
    scene = add_scene_arguments(
        parser,
        speaker_metavar="NAME[=AUDIO]",
        speaker_help="with --scene, repeatable: NAME=AUDIO gives that person their own speech; NAME alone names the "
        "channels of a multi-channel --audio in order, or orders the --timeline speakers",
    )
    scene.add_argument(
        "--timeline", type=Path, metavar="CSV", help="with --scene and --audio: start,end,name turns (seconds)"
    )
    add_assign_argument(scene)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from apb2face.data.video import write_video
    from apb2face.inference.pipeline import APB2FacePipeline

    if args.out.suffix.lower() != ".mp4":
        raise UserError("output must be an .mp4 file", args.out)
    check_writable(args.out)
    if args.size is not None and not 16 <= args.size <= 2048:
        raise UserError(f"--size must be between 16 and 2048, got {args.size}")
    check_backend(args)
    if not args.max_seconds > 0:
        raise UserError(f"--max-seconds must be positive, got {args.max_seconds:g}")
    if args.scene is not None:
        return scene(args)
    check_single_face(args)
    check_not_an_input(args.out, args.audio, args.driving, args.pose, args.blink, args.reference)
    check_full_frame(args)
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, device=args.device, backend=args.backend, int8=args.int8)
    # a photo of someone the checkpoint does not know fails here, before any speech is synthesised (both paths)
    pipe.prepare_reference(args.reference, allow_unknown=args.allow_unknown)
    if args.text is not None:
        from apb2face.data.synth.speech import synthesize

        speech = synthesize(args.text, voice=args.voice)
        audio, sample_rate = speech.audio, speech.sample_rate
    else:
        audio, sample_rate = args.audio, None
    if args.full_frame:
        return full_frame(args, pipe, audio, sample_rate)
    driving_audio, _motion, batches = pipe.generate(
        args.reference,
        audio,
        sample_rate=sample_rate,
        pose=args.pose,
        eyes=args.blink,
        driving=args.driving,
        fps=args.fps,
        seed=args.seed,
        batch_size=args.batch_size,
        max_seconds=args.max_seconds,
        allow_unknown=args.allow_unknown,
    )
    # the bar appears after half a second (an output refused when it is opened fails sooner and shows none) and is
    # erased when it ends, so an error is the only line left on the terminal; no bar when stderr is not a terminal
    progress = tqdm(
        total=driving_audio.num_frames, desc="generate", unit="frame", leave=False, delay=0.5, disable=None
    )

    def frames() -> Iterator[np.ndarray]:
        for batch, _landmarks in batches:
            progress.update(len(batch))
            yield from (resize(f, args.size) for f in batch) if args.size else batch

    try:
        with output_errors(args.out):
            written = write_video(
                args.out, frames(), fps=args.fps, audio=driving_audio.audio, sample_rate=driving_audio.sample_rate
            )
    finally:
        progress.close()
    log.info(
        "wrote %s: %d frames at %g fps (%.2f s), %dx%d, audio %.2f s",
        args.out,
        written,
        args.fps,
        written / args.fps,
        args.size or pipe.image_size,
        args.size or pipe.image_size,
        len(driving_audio.audio) / driving_audio.sample_rate,
    )
    return 0


# ------------------------------------------------------------------------------------------------ --full-frame


def check_full_frame(args: argparse.Namespace) -> None:
    """The full-frame flags go together: --region/--mix need --full-frame, which takes the --driving video's (or the
    avatar clip's) own size, rate and motion (no --size, --pose, --blink)."""
    if not args.full_frame:
        if args.region is not None or args.mix:
            raise UserError("--region and --mix need --full-frame")
        return
    for flag, value in (("--size", args.size), ("--pose", args.pose), ("--blink", args.blink)):
        if value is not None:
            raise UserError(f"{flag} cannot be used with --full-frame (the video gives the size, pose and blinks)")


def full_frame(args: argparse.Namespace, pipe: object, audio: object, sample_rate: int | None) -> int:
    """Re-voice --driving (or the identity's avatar clip) with the audio (apb2face.inference.revoice), with a
    progress bar."""
    from tqdm import tqdm

    from apb2face.inference.avatar import load_avatar
    from apb2face.inference.compose import ComposeConfig
    from apb2face.inference.revoice import RevoiceConfig, revoice

    config = RevoiceConfig(
        compose=ComposeConfig(region=args.region or "face"),
        mix=args.mix,
        batch_size=args.batch_size,
        max_seconds=args.max_seconds,
    )
    video, track = args.driving, None
    if video is None:
        if args.reference not in pipe.identities:
            raise UserError("--full-frame without --driving renders over an identity's avatar clip: --reference NAME")
        avatar = load_avatar(pipe, args.reference, config)
        video, track = avatar.video, avatar.track
    progress = tqdm(desc="re-voice", unit="frame", leave=False, delay=0.5, disable=None)
    try:
        with output_errors(args.out):
            report = revoice(
                pipe, args.reference, video, audio, args.out, config, sample_rate=sample_rate,
                progress=progress.update, allow_unknown=args.allow_unknown, track=track,
            )  # fmt: skip
    finally:
        progress.close()
    log.info(
        "wrote %s: %d frames at %g fps, %dx%d; %d of %d video frames had a face, %d output frames passed through",
        args.out,
        report.frames,
        report.fps,
        report.size[1],
        report.size[0],
        report.faces_found,
        report.source_frames,
        report.passed_through,
    )
    return 0


# ------------------------------------------------------------------------------------------------------- --scene


def check_single_face(args: argparse.Namespace) -> None:
    """Without --scene: one --reference and one of --audio / --text; the scene flags need --scene."""
    check_no_scene_flags(args, ("--timeline", args.timeline))
    if args.reference is None:
        raise UserError("--reference is required (or --scene for several people)")
    if args.audio is None and args.text is None:
        raise UserError("one of --audio or --text is required")


def check_scene(args: argparse.Namespace) -> None:
    """--scene takes its faces, pose and blinks from the scene and its speech from --speaker/--audio/--timeline."""
    given = (
        ("--reference", args.reference), ("--text", args.text), ("--driving", args.driving), ("--pose", args.pose),
        ("--blink", args.blink), ("--size", args.size), ("--region", args.region),
    )  # fmt: skip
    refuse_with_scene(given, "the scene gives the faces, size and motion")
    if args.full_frame or args.mix:
        raise UserError("--full-frame and --mix cannot be used with --scene (a scene is always full frame)")
    if args.timeline is not None and args.audio is None:
        raise UserError("--timeline needs --audio (the mixed speech it splits into turns)")
    if not args.speaker and args.timeline is None:
        raise UserError("--scene needs --speaker NAME=AUDIO (one per person who speaks), or --audio with --timeline")


def scene_audio(args: argparse.Namespace) -> object:
    """The speakers' audio in the form the flags give (apb2face.inference.scene)."""
    from apb2face.inference.scene import (
        parse_speaker,
        speakers_from_channels,
        speakers_from_files,
        speakers_from_timeline,
    )

    speakers = [parse_speaker(text) for text in args.speaker or ()]
    with_files = [s for s in speakers if s[1] is not None]
    if args.audio is None:
        if len(with_files) != len(speakers):
            raise UserError("--speaker NAME without =AUDIO needs --audio (one channel per speaker, or --timeline)")
        return speakers_from_files(with_files, args.max_seconds)
    if with_files:
        raise UserError("with --audio, give --speaker NAME without a file (the speech comes from --audio)")
    names = [name for name, _ in speakers]
    if args.timeline is not None:
        return speakers_from_timeline(args.audio, args.timeline, names or None, args.max_seconds)
    return speakers_from_channels(args.audio, names, args.max_seconds)


def scene(args: argparse.Namespace) -> int:
    """Voice every person of --scene (apb2face.inference.scene), with a progress bar."""
    from tqdm import tqdm

    from apb2face.inference.pipeline import APB2FacePipeline, check_fps
    from apb2face.inference.revoice import RevoiceConfig
    from apb2face.inference.scene import SceneConfig, generate_scene

    check_scene(args)
    speaker_files = [text.partition("=")[2] or None for text in args.speaker or ()]
    check_not_an_input(args.out, args.scene, args.audio, args.timeline, *speaker_files)
    if not args.scene.is_file():
        raise UserError("file not found", args.scene)
    check_fps(args.fps)
    config = SceneConfig(
        render=RevoiceConfig(batch_size=args.batch_size, max_seconds=args.max_seconds),
        assign=args.assign,
        fps=args.fps,
        seed=args.seed,
    )
    audio = scene_audio(args)
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint, device=args.device, backend=args.backend, int8=args.int8)
    progress = tqdm(desc="scene", unit="frame", leave=False, delay=0.5, disable=None)
    try:
        with output_errors(args.out):
            report = generate_scene(pipe, args.scene, audio, args.out, config, progress=progress.update)
    finally:
        progress.close()
    cast = ", ".join(
        f"{f.identity or 'unknown'} ({'speaks' if f.speaker else 'listens' if f.identity else 'unchanged'})"
        for f in report.faces
    )
    log.info(
        "wrote %s: %d frames at %g fps, %dx%d; faces left to right: %s",
        args.out,
        report.frames,
        report.fps,
        report.size[1],
        report.size[0],
        cast,
    )
    return 0
