"""`apb2face` command line: one subcommand per module in this package, listed explicitly in COMMANDS.

Each command module defines `add_arguments(parser)` and `run(args) -> int`; heavy imports happen inside `run` so
that `apb2face --help` is instant. User errors (`UserError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from apb2face import __version__
from apb2face.cli.native_logs import native_log_filter
from apb2face.config import is_override
from apb2face.errors import UserError

# command name -> (module in apb2face.cli, one-line help). Explicit: no discovery by file name.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "render the built-in multi-person talking-face dataset"),
    "prepare": ("prepare", "turn real talking-head videos into a dataset (face tracking, crops, pose, eyes, clips)"),
    "import-annvi": ("import_annvi", "convert the official AnnVI dataset layout into a dataset"),
    "train": ("train", "train a model on a dataset (also under torchrun for several processes)"),
    "enroll": ("enroll", "add people to a checkpoint from their own videos, keeping everyone it knew (+ model card)"),
    "info": ("info", "parameters per module and GMAC of a config or checkpoint"),
    "generate": ("generate", "make a talking-face video from a reference face and audio or text"),
    "identities": ("identities", "list the identities bundled in a checkpoint"),
    "demo": ("demo", "bundled identities speaking a sentence: demo.mp4 + demo_strip.png"),
    "bench": ("bench", "speed per config: params, GMAC, frames/s (PyTorch, ONNX Runtime fp32/INT8), stream latency"),
    "stream": ("stream", "drive a face with live audio (file or stdin PCM), frames as the audio arrives"),
    "export": ("export", "export a checkpoint to ONNX (+ optional INT8) for ONNX Runtime"),
    "evaluate": ("evaluate", "self-reenactment metrics on held-out clips: report.json, report.md (Table 1), strips"),
    "grid": ("grid", "cross-identity matrix (references x driving identities): PNG and MP4s"),
    "serve": ("serve", "web page + HTTP API: offline video jobs and live sessions from a microphone or text"),
    "decouple": ("decouple", "yaw/pitch/roll/blink sweeps of one face (Figure 4) with a measured check"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apb2face", description="Real-time audio-driven multi-face reenactment.")
    parser.add_argument("--version", action="version", version=f"apb2face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"apb2face.cli.{module_name}")
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line. `key=value` overrides may stand anywhere among the options of a command that takes them
    (argparse alone accepts positionals only in one run): any such word argparse did not place is added to them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or not all(is_override(word) for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    _quiet_native_logs()
    with native_log_filter():
        try:
            return int(args._module.run(args) or 0)
        except UserError as exc:
            print(f"apb2face {args.command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"apb2face {args.command}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # the reader of stdout went away (`apb2face identities | head -1`): stop quietly, as Unix tools do;
            # stdout now points at nothing, so the interpreter's final flush cannot raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


def _quiet_native_logs() -> None:
    # mediapipe/TFLite and absl print INFO/WARNING lines to stderr that users cannot act on
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


if __name__ == "__main__":
    raise SystemExit(main())
