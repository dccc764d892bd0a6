"""The demo: bundled identities of a checkpoint speaking one espeak-ng sentence, side by side.

Writes OUT/demo.mp4 (the identities in a row, with the speech as AAC) and OUT/demo_strip.png (one row of frames per
identity at evenly spaced times). Inference only: a few seconds of video per identity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from apb2face.cli.common import add_checkpoint_argument, check_writable, output_errors, resize
from apb2face.errors import UserError
from apb2face.inference.motion import DEFAULT_SEED

DEMO_TEXT = "Hello! I am a talking face, made from nothing but this sound. Watch my lips follow every word."
CAPTION_PX = 28


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument("--text", default=DEMO_TEXT, help="sentence to speak (espeak-ng)")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice (default: en-us)")
    parser.add_argument(
        "--identities",
        default=None,
        metavar="A,B,...",
        help="identities to show (default: up to --max-identities of the checkpoint's)",
    )
    parser.add_argument("--max-identities", type=int, default=4, help="default: 4")
    parser.add_argument("--tile", type=int, default=256, help="displayed size of each face in pixels (default: 256)")
    parser.add_argument("--strip-frames", type=int, default=8, help="frames per identity in the PNG (default: 8)")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"natural-motion seed of the first identity (default: {DEFAULT_SEED})",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from apb2face.data.synth.speech import synthesize
    from apb2face.data.video import write_video
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.io import atomic_path

    log = logging.getLogger(__name__)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("output must be a directory", args.out)
    check_writable(args.out / "demo.mp4")
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    names = _choose_identities(pipe.identities, args.identities, args.max_identities)
    speech = synthesize(args.text, voice=args.voice)

    videos = []
    with tqdm(total=None, desc="demo", unit="frame") as progress:
        for i, name in enumerate(names):
            audio, _motion, batches = pipe.generate(
                name, speech.audio, sample_rate=speech.sample_rate, fps=25.0, seed=args.seed + i
            )
            if progress.total is None:
                progress.total = audio.num_frames * len(names)
                progress.refresh()
            frames = []
            for batch, _landmarks in batches:
                frames.append(batch)
                progress.update(len(batch))
            videos.append(np.concatenate(frames))

    tiles = [np.stack([_caption(resize(f, args.tile), name) for f in video]) for name, video in zip(names, videos)]
    grid = np.concatenate(tiles, axis=2)  # identities side by side
    strip = _strip(videos, names, args.strip_frames, args.tile // 2)

    import cv2

    png = args.out / "demo_strip.png"
    with output_errors(args.out):
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(png) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
                raise UserError("cannot write PNG", png)
        write_video(args.out / "demo.mp4", grid, fps=25.0, audio=speech.audio, sample_rate=speech.sample_rate)
    log.info(
        "wrote %s (%d frames, %d identities: %s) and %s",
        args.out / "demo.mp4",
        len(grid),
        len(names),
        ", ".join(names),
        png,
    )
    return 0


def _choose_identities(available: list[str], wanted: str | None, limit: int) -> list[str]:
    if not available:
        raise UserError("the checkpoint bundles no identities (identities/<name>.png)")
    if wanted:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        unknown = [n for n in names if n not in available]
        if unknown:
            raise UserError(f"unknown identities {', '.join(unknown)} (known: {', '.join(available)})")
        return names
    return available[: max(1, limit)]


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    import cv2

    bar = np.full((CAPTION_PX, frame.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, text, (8, CAPTION_PX - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([frame, bar], axis=0)


def _strip(videos: list[np.ndarray], names: list[str], columns: int, tile: int) -> np.ndarray:
    """Rows = identities, columns = evenly spaced frames (the same instants in every row)."""
    n = min(len(v) for v in videos)
    idx = np.linspace(0, n - 1, max(1, columns)).round().astype(int)
    rows = [np.concatenate([resize(v[i], tile) for i in idx], axis=1) for v in videos]
    return np.concatenate([_caption(row, name) for row, name in zip(rows, names)], axis=0)
