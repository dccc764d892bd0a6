"""Speed of the inference stack per config: what `apb2face bench` prints.

Per config (random weights: speed does not depend on them; AdaConvs initialised like upstream so no branch is
constant-folded away):

* params, gmac: APB2Face (fuser + generator) parameters and multiply-accumulates per frame at batch 1, counted by
  apb2face.models.profile with the reference encoded every frame; gmac_per_frame: with the reference encoder cached
  (the fuser still counted on its whole window: inference encodes each 10 ms audio row once, ahead of the frames,
  so it runs a little less per frame);
* fps torch_b1/b8: PyTorch eager fuser (on windows of encoded audio rows, as inference feeds it) + generator render
  (cached reference) + frame conversion per frame;
* fps onnx_b1/b8, onnx_int8_b1/b8: the exported per-frame graph (fuser + generator + frame conversion) in ONNX
  Runtime, fp32 and dynamic INT8 (apb2face.inference.export);
* fps e2e_b1: one stream end to end on ONNX Runtime fp32: PCM pushed in 20 ms chunks (chunk_ms) as fast as possible
  through StreamingSession (incremental audio features, windows, motion, fuser, generator, frame conversion), one
  frame at a time with `threads` intra-op threads;
* fps e2e_par (threads > 1): the same stream with frame-parallel rendering, `threads` frames at once with one
  intra-op thread each (StreamingSession workers); e2e: the better of the two, the stream's rate on this host;
* stream_latency_ms p50/p95/max: the same stream fed at the speed of speech (simulate_live, same chunks): wall
  time from the moment a frame's instant of audio was spoken to the moment its frame is ready;
* frame_budget_used: the share of real time that live stream's work takes (compute per frame over the frame period,
  40 ms at 25 fps): above 1 a stream falls behind and its latency grows without bound.

Timings are medians of repeated calls after warm-up, in one process, with `threads` intra-op threads for both
PyTorch and ONNX Runtime (never both pools at once). On a shared machine absolute numbers are noisy; ratios taken
side by side in one run are the reliable part.
"""

from __future__ import annotations

import functools
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apb2face.data import audio as A

log = logging.getLogger(__name__)

BATCHES = (1, 8)
CHUNK_MS = 20.0


@dataclass
class BenchOptions:
    threads: int = 2
    warmup: int = 3
    repeats: int = 10
    e2e_seconds: float = 6.0  # audio pushed for the end-to-end rate
    live_seconds: float = 6.0  # audio fed at real-time speed for the latency figures
    int8: bool = True
    image_size: int | None = None  # override every config's image size
    chunk_ms: float = CHUNK_MS  # PCM chunk size of the streams
    model_overrides: tuple[str, ...] = ()  # `model.x=...` applied to every config, e.g. model.audio_lookahead=4


def bench_config(name: str, options: BenchOptions) -> dict[str, Any]:
    """The figures of one preset (or YAML file) `name`."""
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.profile import count_macs, num_params

    overrides = ["model.adaconv_init=normal", *options.model_overrides]
    if options.image_size is not None:
        overrides.append(f"model.image_size={options.image_size}")
    config = model_config(name, overrides)
    torch.manual_seed(0)
    model = APB2Face(config).eval()
    s = config.image_size
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    ref = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    one = _frame_inputs(config, 1, rng)
    with torch.inference_mode():
        total = sum(count_macs(model, ref, *one).values())
        features = model.encode_reference(ref)
        per_frame = sum(count_macs(model.fuser, *one).values()) + sum(
            count_macs(_Render(model), features, model.fuse(*one)[0]).values()
        )
    result: dict[str, Any] = {
        "params": num_params(model),
        "gmac": round(total / 1e9, 3),
        "fps": {},
        "stream_latency_ms": {},
        "frame_budget_used": None,
    }
    extra = {"image_size": s, "generator": config.generator, "gmac_per_frame": round(per_frame / 1e9, 3)}
    log.info(
        "%s: %d px, generator %s, %.2fM params, %.2f GMAC (%.2f per frame with the reference cached)",
        name,
        s,
        config.generator,
        result["params"] / 1e6,
        result["gmac"],
        extra["gmac_per_frame"],
    )

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        for batch in BATCHES:
            inputs = _encoded(model, _frame_inputs(config, batch, rng))
            with torch.inference_mode():

                def torch_step(inputs: tuple = inputs) -> np.ndarray:
                    latent, _landmarks = model.fuse_rows(*inputs)
                    return _to_frames(model.render(features, latent))

                result["fps"][f"torch_b{batch}"] = _fps(torch_step, batch, options)
            log.info("  torch eager b%d: %.1f fps", batch, result["fps"][f"torch_b{batch}"])
    finally:
        torch.set_num_threads(previous_threads)

    with tempfile.TemporaryDirectory(prefix="apb2face-bench-") as tmp:
        result["fps"].update(_bench_onnx(model, Path(tmp), features.numpy(), config, rng, options))
        e2e, e2e_par, live, extra["lookahead_ms"] = _bench_stream(model, config, crop, Path(tmp), options)
    result["fps"]["e2e_b1"] = e2e
    if e2e_par is not None:
        result["fps"]["e2e_par"] = e2e_par
    result["fps"]["e2e"] = max(e2e, e2e_par or 0.0)
    result["stream_latency_ms"] = {
        "p50": round(live.percentile(50), 1),
        "p95": round(live.percentile(95), 1),
        "max": round(live.percentile(100), 1),
    }
    result["frame_budget_used"] = round(live.budget_share, 3)
    return {"figures": result, "extra": extra}


def model_config(name: str, overrides: list[str]) -> Any:
    """The ModelConfig of a preset or YAML file, with `model.x=...` overrides; its training section plays no part in
    speed, so it is not read (inference needs no training code)."""
    from apb2face.config import apply_overrides, from_dict, read_preset
    from apb2face.errors import UserError
    from apb2face.models.config import ModelConfig

    section = apply_overrides(read_preset(name), overrides).get("model", {})
    if not isinstance(section, dict):
        raise UserError("config key 'model' must be a section (mapping)", name)
    return from_dict(ModelConfig, section, prefix="model.")


class _Render(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.model.render(features, latent)


def _frame_inputs(config: Any, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy((rng.standard_normal((batch, 1, config.audio_window, 60)) * 5).astype(np.float32)),
        torch.from_numpy(rng.uniform(-10, 10, (batch, 3)).astype(np.float32)),
        torch.from_numpy(rng.uniform(0, 1, (batch, 2)).astype(np.float32)),
    )


def _encoded(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Frame inputs with the audio windows as inference feeds them: rows encoded once, ahead of the frame."""
    from apb2face.inference.export import encoded_windows, torch_rows

    with torch.inference_mode():
        windows = encoded_windows(torch_rows(model), inputs[0].numpy())
    return (torch.from_numpy(windows), *inputs[1:])


def _to_frames(images: torch.Tensor) -> np.ndarray:
    from apb2face.inference.pipeline import APB2FacePipeline

    return APB2FacePipeline.postprocess(images)


def _fps(fn: Any, batch: int, options: BenchOptions) -> float:
    from apb2face.models.profile import time_call

    times = time_call(fn, options.warmup, options.repeats)
    return round(batch / statistics.median(times), 2)


def _bench_onnx(
    model: torch.nn.Module,
    directory: Path,
    features: np.ndarray,
    config: Any,
    rng: np.random.Generator,
    options: BenchOptions,
) -> dict[str, float]:
    from apb2face.inference.export import FRAME_FILE, FRAME_INT8_FILE, OnnxBackend, quantize_frame_graph, write_graphs

    write_graphs(model, directory)
    variants = [False]
    if options.int8:
        quantize_frame_graph(directory / FRAME_FILE, directory / FRAME_INT8_FILE)
        variants.append(True)
    out = {}
    for int8 in variants:
        backend = OnnxBackend(directory, int8=int8, threads=options.threads)
        for batch in BATCHES:
            audio, pose, eyes = (t.numpy() for t in _encoded(model, _frame_inputs(config, batch, rng)))
            key = f"onnx{'_int8' if int8 else ''}_b{batch}"
            out[key] = _fps(functools.partial(backend.run, features, audio, pose, eyes), batch, options)
            log.info("  ORT %s b%d: %.1f fps", "int8" if int8 else "fp32", batch, out[key])
        del backend
    return out


def _bench_stream(
    model: torch.nn.Module, config: Any, crop: np.ndarray, directory: Path, options: BenchOptions
) -> tuple[float, float | None, Any, float]:
    """(end-to-end frames/s one frame at a time, and frame-parallel (None with one thread), live timing, algorithmic
    look-ahead in ms) of one stream through ONNX Runtime."""
    from apb2face.inference.export import OnnxBackend
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.inference.streaming import StreamingSession, simulate_live

    def pipeline(threads: int) -> APB2FacePipeline:
        pipe = APB2FacePipeline(None, config, {"bench": crop}, backend=OnnxBackend(directory, threads=threads))
        pipe.prepare_reference("bench")  # face detection and reference encoding happen once, before timing
        return pipe

    pipe = pipeline(options.threads)
    chunk = int(options.chunk_ms / 1000 * A.SAMPLE_RATE)

    def speech_like(seconds: float) -> np.ndarray:
        rng = np.random.default_rng(1)
        t = np.arange(int(seconds * A.SAMPLE_RATE)) / A.SAMPLE_RATE
        return (rng.standard_normal(len(t)) * 0.2 * np.sin(2 * np.pi * 3 * t) ** 2).astype(np.float32)

    def rate(pipe: APB2FacePipeline, workers: int) -> float:
        warm = StreamingSession(pipe, "bench", workers=workers)
        for lo in range(0, A.SAMPLE_RATE, chunk):
            warm.push(speech_like(1.0)[lo : lo + chunk])
        warm.finish()
        pcm = speech_like(options.e2e_seconds)
        session = StreamingSession(pipe, "bench", workers=workers)
        start = time.perf_counter()
        frames = 0
        for lo in range(0, len(pcm), chunk):
            frames += len(session.push(pcm[lo : lo + chunk]))
        frames += len(session.finish())
        return round(frames / (time.perf_counter() - start), 2)

    e2e = rate(pipe, 1)
    log.info("  end to end, one stream (ORT fp32): %.1f fps", e2e)
    e2e_par = None
    if options.threads > 1:
        e2e_par = rate(pipeline(1), options.threads)
        log.info(
            "  end to end, one stream, %d frames at once (ORT fp32, 1 thread each): %.1f fps", options.threads, e2e_par
        )
    session = StreamingSession(pipe, "bench")

    timing = simulate_live(StreamingSession(pipe, "bench"), speech_like(options.live_seconds), options.chunk_ms)
    log.info(
        "  live stream latency (%g ms chunks): p50 %.0f ms, p95 %.0f ms, max %.0f ms (look-ahead %.1f ms of it); "
        "%.0f %% of the frame budget used",
        options.chunk_ms,
        timing.percentile(50),
        timing.percentile(95),
        timing.percentile(100),
        session.lookahead_s * 1000,
        100 * timing.budget_share,
    )
    return e2e, e2e_par, timing, round(session.lookahead_s * 1000, 1)


def run_bench(names: list[str], options: BenchOptions) -> dict[str, Any]:
    """{"configs": {name: {params, gmac, fps, stream_latency_ms, frame_budget_used}}, "setup": {...}} for each
    config in order."""
    import onnxruntime

    configs, extras = {}, {}
    for name in names:
        out = bench_config(name, options)
        configs[name] = out["figures"]
        extras[name] = out["extra"]
    setup = {
        "threads": options.threads,
        **host(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "chunk_ms": options.chunk_ms,
        "per_config": extras,
        "note": "medians after warm-up in one process; absolute figures vary with machine load",
    }
    return {"configs": configs, "setup": setup}


def host() -> dict[str, Any]:
    """What the figures were measured on: the CPU model, its logical cores and those this process may use."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux: platform's answer stands
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cpu_count": os.cpu_count(), "usable_cpus": usable, "machine": platform.machine()}
