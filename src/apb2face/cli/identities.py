"""List the identities bundled in a checkpoint, one per line: the name, then the reference image's size and file."""

from __future__ import annotations

import argparse

from apb2face.cli.common import add_checkpoint_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser)


def run(args: argparse.Namespace) -> int:
    from apb2face.inference.pipeline import APB2FacePipeline

    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    for name in pipe.identities:
        h, w = pipe.references[name].shape[:2]
        print(f"{name}\t{w}x{h}")
    return 0
