"""Parameters per module and GMAC (multiply-accumulates per frame, batch 1) of a config or a checkpoint.

MACs are counted on Conv/ConvTranspose/Linear layers (apb2face.models.profile); the discriminator is used in
training only and is not part of the inference total.
"""

from __future__ import annotations

import argparse

from apb2face.cli.common import checkpoint_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", help="preset name or YAML file [default]")
    src.add_argument(
        "--checkpoint", type=checkpoint_path, help="release checkpoint directory, or `demo` / `live` (shipped)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (with --config)")


def run(args: argparse.Namespace) -> int:
    import json

    from apb2face.models.profile import model_report

    config, source = _config_and_source(args)
    report = model_report(config)
    report["source"] = source
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{source}: {config.image_size}x{config.image_size}, generator {config.generator} "
        f"(width {config.generator_width}), audio window {config.audio_window} (+{config.audio_lookahead} ahead, "
        f"{config.audio_loudness} loudness)"
    )
    _print_table(report)
    return 0


def _config_and_source(args: argparse.Namespace):  # noqa: ANN202
    """The ModelConfig to report on and how to name where it came from."""
    from apb2face.config import load
    from apb2face.errors import UserError
    from apb2face.models.modeling import load_config
    from apb2face.training.config import RunConfig

    if args.checkpoint:
        if args.overrides:
            raise UserError("key=value overrides apply to --config only")
        config, _ = load_config(args.checkpoint)
        return config, f"checkpoint {args.checkpoint}"
    name = args.config or "default"
    return load(RunConfig, name, args.overrides).model, f"config {name}"


def _print_table(report: dict) -> None:
    print(f"{'module':<34}{'params':>12}{'GMAC':>10}")

    def show(row: dict, indent: int = 0) -> None:
        print(f"{' ' * indent + row['name']:<34}{row['params']:>12,}{row['gmac']:>10.3f}")
        for child in row.get("children", []):
            show(child, indent + 2)

    for row in report["modules"]:
        show(row)
    inf = report["inference"]
    print(f"{'inference total (fuser + generator)':<34}{inf['params']:>12,}{inf['gmac']:>10.3f}")
    d = report["discriminator"]
    print(f"{'discriminator (training only)':<34}{d['params']:>12,}{d['gmac']:>10.3f}")
