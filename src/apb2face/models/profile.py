"""Parameters and multiply-accumulates (MACs) per module: the one counter used by `apb2face info`, the benchmarks
and `apb2face bench`.

MACs are half of what torch's FlopCounterMode counts: convolutions (nn.Conv2d and functional ones alike, e.g. a
layer's weight reused in another shape at inference), transposed convolutions and matrix products (Linear).
Element-wise work such as InstanceNorm, activations, AdaConv's per-pixel affine and the reference warp's sampling is
not counted, as in upstream's figure: Conv2d = output elements x (in_channels / groups) x kernel area;
ConvTranspose2d = input elements x (out_channels / groups) x kernel area; Linear = output elements x in_features.
Figures are per sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_macs(module: nn.Module, *args: Any, batch: int | None = None) -> dict[str, int]:
    """Run `module(*args)` once and return each module's own MACs per sample (not its submodules'), keyed by
    qualified name ("" for `module` itself: work done in its own forward)."""
    batch = batch or next(a.shape[0] for a in args if isinstance(a, torch.Tensor))
    with FlopCounterMode(display=False) as counter:
        module(*args)
    # keys are "Root", "Root.child", ...: each module's count includes its submodules'; a module whose methods are
    # called rather than its forward has no key of its own, so each count is taken off its nearest counted ancestor
    totals = {name: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items() if name != "Global"}
    own = dict(totals)
    for name, total in totals.items():
        parent = name.rpartition(".")[0]
        while parent and parent not in totals:
            parent = parent.rpartition(".")[0]
        if parent:
            own[parent] -= total
    root = type(module).__name__
    return {(name[len(root) + 1 :] if name != root else ""): n // batch for name, n in own.items() if n > 0}


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class Row:
    name: str
    params: int
    macs: int
    children: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "params": self.params, "gmac": round(self.macs / 1e9, 4)}
        if self.children:
            d["children"] = [c.to_dict() for c in self.children]
        return d


def breakdown(module: nn.Module, macs: dict[str, int], name: str, prefix: str = "", depth: int = 2) -> Row:
    """A tree of rows (params, MACs): `module`'s children, and the items of those that are ModuleLists."""
    full = prefix + name if name else prefix.rstrip(".")
    key_prefix = full + "." if full else ""
    total = sum(v for k, v in macs.items() if k == full or k.startswith(key_prefix) or not full)
    row = Row(name or "model", num_params(module), total)
    # below the first level only ModuleLists (cells, AdaConvs) are worth opening; Sequential indices are noise
    if depth > 0 and (not prefix or isinstance(module, nn.ModuleList)):
        for child_name, child in module.named_children():
            if num_params(child) or any(k.startswith(key_prefix + child_name) for k in macs):
                sub = breakdown(child, macs, child_name, key_prefix, depth - 1)
                if isinstance(module, nn.ModuleList):
                    sub.name = f"{row.name}[{child_name}] {type(child).__name__}"
                row.children.append(sub)
    return row


def model_report(config, discriminator: bool = True) -> dict:
    """Parameters and GMAC per module of the APB2Face stack (and the PatchGAN) built from a ModelConfig."""
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.discriminator import PatchDiscriminator

    model = APB2Face(config).eval()
    s = config.image_size
    inputs = (
        torch.zeros(1, 3, s, s),
        torch.zeros(1, 1, config.audio_window, config.num_audio_features),
        torch.zeros(1, 3),
        torch.ones(1, 2),
    )
    macs = count_macs(model, *inputs)
    fuser = breakdown(model.fuser, macs, "fuser", depth=1)
    generator = breakdown(model.generator, macs, "generator", depth=2)
    # APB2Face runs its generator's encode and render as methods, not through its forward, so the convolutions those
    # methods call themselves (a layer's weights run as a function, e.g. the flow as taps) are counted at the top:
    # APB2Face has none of its own
    if macs.get("", 0):
        generator.macs += macs[""]
        generator.children.append(Row("functional convolutions", 0, macs[""]))
    report: dict[str, Any] = {
        "image_size": s,
        "generator": config.generator,
        "modules": [fuser.to_dict(), generator.to_dict()],
        "inference": {
            "params": fuser.params + generator.params,
            "gmac": round((fuser.macs + generator.macs) / 1e9, 4),
        },
    }
    if discriminator:
        disc = PatchDiscriminator(config).eval()
        d_macs = count_macs(disc, torch.zeros(1, 3, s, s), torch.zeros(1, 3, s, s))
        report["discriminator"] = {"params": num_params(disc), "gmac": round(sum(d_macs.values()) / 1e9, 4)}
    return report


def time_call(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn` after `warmup` calls (CUDA synchronised when available)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times
