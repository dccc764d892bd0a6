"""Export a checkpoint for ONNX Runtime: a reference-encoder graph (run once per reference) and one per-frame graph
(fuser + generator + frame conversion), checked against PyTorch (max abs difference <= 1e-3) before anything is
written. --int8 adds a dynamically quantised per-frame graph and records its SSIM against the fp32 frames.
Use the result with `apb2face generate|stream --backend onnx --checkpoint DIR`.
"""

from __future__ import annotations

import argparse
import json
import logging

from apb2face.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from apb2face.cli.common import add_checkpoint_argument, add_output_dir_argument

    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    add_output_dir_argument(parser, "export directory")
    parser.add_argument("--int8", action="store_true", help="also write a dynamically INT8-quantised frame graph")
    parser.add_argument(
        "--int8-ops",
        default="MatMul",
        metavar="OPS",
        help="comma-separated ONNX node types to quantise with --int8 (default: MatMul; Conv is "
        "supported but dynamic ConvInteger is several times slower than fp32 on CPU)",
    )


def run(args: argparse.Namespace) -> int:
    from apb2face.inference.export import export_onnx
    from apb2face.io import new_output_dir

    ops = tuple(op.strip() for op in args.int8_ops.split(",") if op.strip())
    unknown = sorted(set(ops) - {"MatMul", "Conv"})
    if unknown or not ops:
        raise UserError(f"--int8-ops must list MatMul and/or Conv, got {args.int8_ops!r}")
    if args.out.resolve() == args.checkpoint.resolve():
        raise UserError("--out must differ from --checkpoint", args.out)
    # a folder that holds anything (a user's files, the checkpoint itself) is refused before any work, never replaced
    with new_output_dir(args.out) as out:
        manifest = export_onnx(args.checkpoint, out, int8=args.int8, int8_ops=ops)
    parity = manifest["parity"]
    log.info(
        "wrote %s: reference encoder + per-frame graph (opset %d); ORT vs PyTorch max abs diff %.2e",
        args.out,
        manifest["opset"],
        parity["max_abs_diff"],
    )
    if "int8" in manifest:
        log.info(
            "INT8 (%s): SSIM vs fp32 frames %.4f",
            ",".join(manifest["int8"]["op_types"]),
            manifest["int8"]["ssim_vs_fp32"],
        )
    print(json.dumps({k: manifest[k] for k in ("parity", "int8") if k in manifest}, indent=2))
    return 0
