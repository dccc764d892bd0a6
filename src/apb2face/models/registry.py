"""Generator choice by name (`ModelConfig.generator`). Explicit table: add a line here to add a generator.

Every generator is built as `cls(config: ModelConfig)` and provides `encode(reference) -> features`,
`render(features, latent) -> image` and `forward(reference, latent) -> image` (see models/generator.py); those that
draw the geometry sketch (config.SKETCH_GENERATORS) also take `geometry` (B, K, 2) after the latent.
"""

from __future__ import annotations

from torch import nn

from apb2face.errors import UserError
from apb2face.models.config import ModelConfig
from apb2face.models.generator import PaperGenerator
from apb2face.models.mobile_generator import MobileGenerator
from apb2face.models.skip_generator import SkipGenerator

GENERATORS: dict[str, type[nn.Module]] = {
    "paper": PaperGenerator,
    "mobile": MobileGenerator,  # CPU-fast design (models/mobile_generator.py)
    "skip": SkipGenerator,  # reference skip path: sharp after short CPU training (models/skip_generator.py)
}


def build_generator(config: ModelConfig) -> nn.Module:
    if config.generator not in GENERATORS:
        raise UserError(f"unknown generator {config.generator!r} (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[config.generator](config)
