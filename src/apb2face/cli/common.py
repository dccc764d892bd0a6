"""What several commands share: the common flags and the checks on output paths, so each habit has one spelling.

Output folders are made with `apb2face.io.new_output_dir` (new or empty, removed again if the command fails);
single output files are written atomically by their writers after `check_writable` has failed fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.errors import UserError


def checkpoint_path(value: str) -> Path:
    """A --checkpoint value: a directory, or the name of a checkpoint shipped with apb2face (`demo`, `live`)."""
    from apb2face.inference.pipeline import resolve_checkpoint

    return resolve_checkpoint(value)


def add_checkpoint_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--checkpoint",
        type=checkpoint_path,
        required=required,
        metavar="CKPT",
        help="checkpoint directory, or `demo` / `live` (the shipped ones)" + ("" if required else " (default: demo)"),
    )


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: PyTorch; onnx: ONNX Runtime on CPU (CKPT may be an `apb2face export` directory; "
        "a checkpoint is exported on the fly) (default: torch)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="with --backend onnx: the dynamically INT8-quantised per-frame graph"
    )


def add_allow_unknown_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unknown",
        action="store_true",
        help="render a photo of someone the checkpoint was not trained on (refused by default: such faces come out "
        "smeared; enrol the person first)",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def add_output_dir_argument(
    parser: argparse.ArgumentParser, what: str = "output directory", metavar: str = "DIR"
) -> None:
    parser.add_argument(
        "--out", "-o", type=Path, required=True, metavar=metavar, help=f"{what} (must not exist, or be empty)"
    )


def add_scene_arguments(parser: argparse.ArgumentParser, speaker_metavar: str, speaker_help: str) -> Any:
    """The scene group with --scene and --speaker as `generate` and `stream` spell them; returns the group, for a
    command's own scene flags and then `add_assign_argument` (so --help lists them in that order)."""
    scene = parser.add_argument_group("scene (several people, each with their own voice; see docs/scene.md)")
    scene.add_argument("--scene", type=Path, metavar="IMAGE|VIDEO", help="an image or video with several people")
    scene.add_argument("--speaker", action="append", metavar=speaker_metavar, help=speaker_help)
    return scene


def add_assign_argument(group: Any) -> None:
    group.add_argument(
        "--assign",
        choices=("identity", "left-to-right"),  # apb2face.inference.scene.ASSIGN
        default="identity",
        help="with --scene: match faces to speakers by who they are (face embedding), or give the i-th --speaker "
        "the i-th face from the left (default: identity)",
    )


def check_no_scene_flags(args: argparse.Namespace, *flags: tuple[str, object]) -> None:
    """Without --scene: --speaker, a command's other scene `flags` (name, value) and a chosen --assign need it."""
    for flag, value in (("--speaker", args.speaker), *flags):
        if value is not None:
            raise UserError(f"{flag} needs --scene")
    if args.assign != "identity":
        raise UserError("--assign needs --scene")


def refuse_with_scene(flags: tuple[tuple[str, object], ...], why: str) -> None:
    """UserError for the first of `flags` (name, value) that is given although --scene gives it (`why` says how)."""
    for flag, value in flags:
        if value is not None:
            raise UserError(f"{flag} cannot be used with --scene ({why})")


def check_backend(args: argparse.Namespace) -> None:
    if args.int8 and args.backend != "onnx":
        raise UserError("--int8 needs --backend onnx")


def check_writable(path: Path) -> None:
    """Fail before any work if `path` cannot be written (without creating anything: no partial output)."""
    if path.is_dir():
        raise UserError("output is a directory", path)
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot create the output here ({ancestor} is not a writable directory)", path)


@contextlib.contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """An OSError while the block writes `path` (the disk fills up, the file grows past a limit, a location that
    passed `check_writable` refuses new files) becomes one line naming the output. Only OSError: anything else is a
    bug and keeps its traceback. The writers are atomic, so no partial file is left behind."""
    try:
        yield
    except OSError as exc:
        reason = (exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]
        raise UserError(f"cannot write the output ({reason})", path) from None


def check_not_an_input(out: Path, *inputs: Path | str | None) -> None:
    """Refuse an output that is one of the inputs (the same file once links are resolved): writing it would replace
    what the command is still reading."""
    target = Path(out).resolve()
    for source in inputs:
        if source is None or not isinstance(source, (str, Path)):
            continue
        if Path(source).exists() and Path(source).resolve() == target:
            raise UserError(f"output is also an input ({source}); choose another output path", out)


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """A square frame resized for viewing: cubic when enlarging, area when shrinking."""
    import cv2

    if frame.shape[0] == size:
        return frame
    interp = cv2.INTER_CUBIC if size > frame.shape[0] else cv2.INTER_AREA
    return cv2.resize(frame, (size, size), interpolation=interp)
