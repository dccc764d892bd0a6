"""ONNX export of a checkpoint and the ONNX Runtime backend that generation and streaming can select.

An export directory is a self-contained model for ONNX Runtime (no PyTorch weights needed)::

    DIR/
      export.json              format, version, files, opset, parity and (with --int8) quantisation measurements
      config.json              the checkpoint's config (model + preprocessing facts), unchanged
      identities/<name>.png    the checkpoint's bundled reference crops, unchanged
      reference_encoder.onnx   reference (1,3,S,S) in [-1,1] -> features: the per-reference part, run once
      audio_encoder.onnx       rows (R,60) of audio features -> encoded rows (R,512): run once per 10 ms row
      frame.onnx               features (1,C,h,w), audio (B,W,512) encoded rows, pose (B,3), eyes (B,2)
                               -> image (B,3,S,S) [-1,1], frames (B,S,S,3) uint8, landmarks (B,K,2)
      frame.int8.onnx          optional: frame.onnx with dynamic INT8 weights

The per-frame graph merges fuser, generator and frame conversion, so one ONNX Runtime session runs per frame (two
alternating sessions double latency when their thread pools spin).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apb2face.errors import UserError
from apb2face.io import atomic_dir, read_json, write_json

log = logging.getLogger(__name__)

EXPORT_FORMAT = "apb2face-onnx"
EXPORT_VERSION = 2  # 2: audio rows are encoded once by their own graph; the frame graph takes encoded windows
MANIFEST_FILE = "export.json"
ENCODER_FILE = "reference_encoder.onnx"
AUDIO_FILE = "audio_encoder.onnx"
FRAME_FILE = "frame.onnx"
FRAME_INT8_FILE = "frame.int8.onnx"
OPSET = 18  # 18: ScatterElements with reduction "max" (the geometry sketch)
PARITY_TOLERANCE = 1e-3  # max abs difference of ORT vs PyTorch images in [-1, 1]
DEFAULT_THREADS = 2
FRAME_INPUTS = ("features", "audio", "pose", "eyes")
FRAME_OUTPUTS = ("image", "frames", "landmarks")
INT8_OPS = ("MatMul",)  # node types quantised by --int8 (see quantize_frame_graph)
# what an export folder may hold: a previous export is replaced by a new one, any other folder is refused
EXPORT_ENTRIES = (
    MANIFEST_FILE,
    ENCODER_FILE,
    AUDIO_FILE,
    FRAME_FILE,
    FRAME_INT8_FILE,
    "config.json",
    "identities",
    "README.md",
)


class _Method(nn.Module):
    """One one-input method of the model as a module (what the exporter traces): the reference and audio encoders."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


class _FrameGraph(nn.Module):
    """Fuser (on a window of encoded audio rows) + generator render + the pipeline's frame conversion, in one graph.

    expand=False: the generator's first per-frame op broadcasts batch-1 reference features over the batch of latents
    (AdaConv's multiply-add), so no copy of the features is made per frame. expand=True (generators that mix the
    reference features into the per-frame path elsewhere) copies them to the batch with static channel and spatial
    sizes, which InstanceNorm's export needs (APB2Face.render's `expand(*features.shape[1:])` traces them as unknown).
    """

    def __init__(self, model: nn.Module, expand: bool = False) -> None:
        super().__init__()
        self.model = model
        self.expand = expand

    def forward(
        self, features: torch.Tensor, audio: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent, landmarks = self.model.fuse_rows(audio, pose, eyes)
        if self.expand:
            features = features.expand(latent.shape[0], *(int(d) for d in features.shape[1:]))
        image = self.model.render(features, latent, landmarks, broadcast=False)
        # same arithmetic as APB2FacePipeline.postprocess (ONNX Round and torch.round both round half to even)
        frames = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        return image, frames, landmarks


def _needs_expand(model: nn.Module, features: torch.Tensor, latent: torch.Tensor) -> bool:
    """Whether the generator's render fails to broadcast batch-1 features over a batch of latents."""
    try:
        with torch.no_grad():
            out = model.render(features, latent, broadcast=False)
    except RuntimeError:
        return True
    return out.shape[0] != latent.shape[0]


def example_inputs(config: Any, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible random inputs for the frame graph (audio scaled like MFCC features)."""
    rng = np.random.default_rng(seed)
    return {
        "reference": rng.uniform(-1, 1, (1, 3, config.image_size, config.image_size)).astype(np.float32),
        "audio": (rng.standard_normal((batch, 1, config.audio_window, config.num_audio_features)) * 5).astype(
            np.float32
        ),
        "pose": rng.uniform(-15, 15, (batch, 3)).astype(np.float32),
        "eyes": rng.uniform(0, 1, (batch, 2)).astype(np.float32),
    }


def encoded_windows(encode_rows: Callable[[np.ndarray], np.ndarray], audio: np.ndarray) -> np.ndarray:
    """Raw windows (B, 1, W, 60) -> windows of encoded rows (B, W, AUDIO_ROW_WIDTH): `encode_rows` (a backend's,
    or `torch_rows(model)`) run on every row of every window (for checks; inference encodes each row once)."""
    batch, _, window, width = audio.shape
    encoded = encode_rows(np.ascontiguousarray(audio, np.float32).reshape(-1, width))
    return np.asarray(encoded, np.float32).reshape(batch, window, -1)


def torch_rows(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A PyTorch model's row encoder on numpy rows."""
    return lambda rows: model.encode_audio_rows(torch.from_numpy(rows)).numpy()


def export_onnx(
    checkpoint: str | Path,
    out_dir: str | Path,
    int8: bool = False,
    int8_ops: tuple[str, ...] = INT8_OPS,
    parity_inputs: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Export checkpoint `checkpoint` to `out_dir`, atomically; returns the manifest written. `out_dir` must be new,
    empty or a previous export (anything else is refused, see apb2face.io.atomic_dir)."""
    from apb2face.models.modeling import CONFIG_FILE, IDENTITIES_DIR, README_FILE, load_pretrained

    checkpoint = Path(checkpoint)
    pre = load_pretrained(checkpoint)
    model = pre.model.eval()
    config = pre.config
    inputs = parity_inputs or example_inputs(config)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, owned_names=EXPORT_ENTRIES) as tmp:
        shutil.copy2(checkpoint / CONFIG_FILE, tmp / CONFIG_FILE)
        if (checkpoint / IDENTITIES_DIR).is_dir():
            shutil.copytree(checkpoint / IDENTITIES_DIR, tmp / IDENTITIES_DIR)
        if (checkpoint / README_FILE).is_file():
            shutil.copy2(checkpoint / README_FILE, tmp / README_FILE)
        write_graphs(model, tmp)
        manifest: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "opset": OPSET,
            "files": {"reference_encoder": ENCODER_FILE, "audio_encoder": AUDIO_FILE, "frame": FRAME_FILE},
            "source_checkpoint": str(checkpoint),
            "generator": config.generator,
            "image_size": config.image_size,
            "parity": measure_parity(model, tmp, inputs),
        }
        if manifest["parity"]["max_abs_diff"] > PARITY_TOLERANCE:
            raise RuntimeError(
                f"ONNX Runtime output differs from PyTorch by {manifest['parity']['max_abs_diff']:.2e}"
                f" (> {PARITY_TOLERANCE})"
            )
        if int8:
            quantize_frame_graph(tmp / FRAME_FILE, tmp / FRAME_INT8_FILE, int8_ops)
            manifest["files"]["frame_int8"] = FRAME_INT8_FILE
            manifest["int8"] = {
                "op_types": list(int8_ops),
                "mode": "dynamic",
                **measure_int8(tmp, realistic_inputs(config, pre.references)),
            }
        write_json(tmp / MANIFEST_FILE, manifest)
    return manifest


def write_graphs(model: nn.Module, directory: Path) -> None:
    """reference_encoder.onnx and frame.onnx for `model` (an APB2Face in eval mode) into `directory`."""
    config = model.config
    ex = example_inputs(config)
    reference = torch.from_numpy(ex["reference"])
    rows = torch.from_numpy(ex["audio"]).reshape(-1, config.num_audio_features)
    with torch.no_grad():
        features = model.encode_reference(reference)
        windows = encoded_windows(torch_rows(model), ex["audio"])
    frame_args = (features, torch.from_numpy(windows), *(torch.from_numpy(ex[k]) for k in FRAME_INPUTS[2:]))
    with torch.no_grad():
        expand = _needs_expand(model, features, model.fuse_rows(*frame_args[1:])[0])
    batch = {0: "batch"}
    _export(_Method(model, "encode_reference"), (reference,), directory / ENCODER_FILE, ["reference"], ["features"])
    _export(
        _Method(model, "encode_audio_rows"),
        (rows,),
        directory / AUDIO_FILE,
        ["rows"],
        ["encoded"],
        {"rows": {0: "rows"}, "encoded": {0: "rows"}},
    )
    _export(
        _FrameGraph(model, expand),
        frame_args,
        directory / FRAME_FILE,
        list(FRAME_INPUTS),
        list(FRAME_OUTPUTS),
        {name: batch for name in (*FRAME_INPUTS[1:], *FRAME_OUTPUTS)},
    )


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    with warnings.catch_warnings():
        # the TorchScript exporter warns about tracing shape comparisons that are constant for our inputs
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def measure_parity(model: nn.Module, directory: Path, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs differences of the exported graphs versus PyTorch on `inputs`."""
    backend = OnnxBackend(directory)
    with torch.no_grad():
        ref = torch.from_numpy(inputs["reference"])
        t_features = model.encode_reference(ref)
        t_windows = encoded_windows(torch_rows(model), inputs["audio"])
        t_image, t_frames, t_landmarks = _FrameGraph(model, expand=True)(
            t_features, torch.from_numpy(t_windows), *(torch.from_numpy(inputs[k]) for k in FRAME_INPUTS[2:])
        )
    o_features = backend.encode(inputs["reference"])
    o_windows = encoded_windows(backend.encode_audio_rows, inputs["audio"])
    o_image, o_frames, o_landmarks = backend.run(
        o_features, o_windows, inputs["pose"], inputs["eyes"], outputs=FRAME_OUTPUTS
    )
    return {
        "features_max_abs_diff": float(np.abs(o_features - t_features.numpy()).max()),
        "audio_max_abs_diff": float(np.abs(o_windows - t_windows).max()),
        "max_abs_diff": float(np.abs(o_image - t_image.numpy()).max()),
        "landmarks_max_abs_diff": float(np.abs(o_landmarks - t_landmarks.numpy()).max()),
        "frames_max_level_diff": int(np.abs(o_frames.astype(np.int16) - t_frames.numpy().astype(np.int16)).max()),
    }


def quantize_frame_graph(src: Path, dst: Path, op_types: tuple[str, ...] = INT8_OPS) -> None:
    """Dynamic INT8 (int8 weights, activations quantised at run time) of the `op_types` nodes of the per-frame
    graph. Default: the MatMuls (fuser and AdaConv MLPs). Dynamic ConvInteger was measured 4-7x slower than fp32
    convolutions on 2 cores (mobile 13 -> 98 ms, paper 177 -> 481 ms per frame at 128 px), so convs stay fp32
    unless asked for."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    _materialise_shared_initializers(model)
    with tempfile.TemporaryDirectory(prefix="apb2face-quant-") as tmp:
        plain, prepared = Path(tmp) / "plain.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, str(plain))
        quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
        # the quantiser logs one INFO line per activation on the root logger (dynamic mode needs no parameters)
        previous = logging.root.manager.disable
        logging.disable(max(previous, logging.INFO))
        try:
            quantize_dynamic(
                str(prepared),
                str(dst),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=list(op_types),
            )
        finally:
            logging.disable(previous)


def _materialise_shared_initializers(model: Any) -> None:
    """The exporter stores equal weights once and feeds the copies through Identity nodes (e.g. zero-initialised
    layers of an untrained model); the quantiser needs every weight to be an initializer of its own."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            model.graph.initializer.append(copy)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def realistic_inputs(config: Any, references: dict[str, np.ndarray], frames: int = 24) -> dict[str, np.ndarray]:
    """Frame-graph inputs as generation produces them: the first bundled identity (random pixels if none), windows
    of a spoken sentence (espeak-ng) and natural head motion, `frames` frames spread over the sentence."""
    from apb2face.data import audio as A
    from apb2face.data.synth.speech import synthesize
    from apb2face.inference.motion import natural_motion

    if references:
        crop = references[sorted(references)[0]]
    else:
        crop = np.random.default_rng(0).integers(0, 256, (config.image_size, config.image_size, 3), np.uint8)
    speech = synthesize("The quick brown fox jumps over the lazy dog.")
    feats = A.audio_features(speech.audio, speech.sample_rate, loudness=config.audio_loudness)
    total = A.num_video_frames(len(speech.audio), 25.0, speech.sample_rate)
    idx = np.linspace(0, total - 1, frames).round().astype(int)
    motion = natural_motion(total, seed=0)
    return {
        "reference": (crop.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1),
        "audio": A.frame_windows(feats, idx, 25.0, config.audio_window, config.audio_lookahead)[:, None],
        "pose": motion.pose[idx],
        "eyes": motion.eyes[idx],
    }


def measure_int8(directory: Path, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """SSIM of INT8 frames versus fp32 frames of the same inputs (1.0 = identical), plus their max difference."""
    from apb2face.models.image_similarity import ssim

    fp32 = OnnxBackend(directory)
    int8 = OnnxBackend(directory, int8=True)
    features = fp32.encode(inputs["reference"])
    windows = encoded_windows(fp32.encode_audio_rows, inputs["audio"])
    a_img, a = fp32.run(features, windows, inputs["pose"], inputs["eyes"], outputs=("image", "frames"))
    b_img, b = int8.run(features, windows, inputs["pose"], inputs["eyes"], outputs=("image", "frames"))
    return {
        "ssim_vs_fp32": float(np.mean(ssim(a, b))),
        "max_abs_diff_vs_fp32": float(np.abs(a_img - b_img).max()),
        "frames": len(a),
    }


def session_options(threads: int = DEFAULT_THREADS, spinning: bool = False, level: str = "all") -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    # idle worker threads spin after each run by default and steal the core from the Python work between frames
    # (audio features, encoding, muxing) and from a second session
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    return so


class OnnxBackend:
    """ONNX Runtime execution of an export directory: `encode` once per reference, `run` per batch of frames.

    Plugs into `APB2FacePipeline(backend=...)` through `encode_reference(crop)` and `step(...)`.
    """

    name = "onnx"

    def __init__(
        self,
        directory: str | Path,
        int8: bool = False,
        threads: int = DEFAULT_THREADS,
        spinning: bool = False,
        level: str = "all",
    ) -> None:
        import onnxruntime as ort

        directory = Path(directory)
        self.directory = directory
        frame_file = directory / (FRAME_INT8_FILE if int8 else FRAME_FILE)
        for path in (directory / ENCODER_FILE, directory / AUDIO_FILE, frame_file):
            if not path.is_file():
                hint = " (export with --int8)" if path.name == FRAME_INT8_FILE else ""
                raise UserError(f"ONNX model not found{hint}", path)
        options = session_options(threads, spinning, level)
        providers = ["CPUExecutionProvider"]
        try:
            self._encoder = ort.InferenceSession(str(directory / ENCODER_FILE), options, providers=providers)
            self._audio = ort.InferenceSession(str(directory / AUDIO_FILE), options, providers=providers)
            self._frame = ort.InferenceSession(str(frame_file), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception classes for corrupt or foreign files
            raise UserError(f"cannot load ONNX model ({str(exc).splitlines()[0][:160]})", directory) from None
        self.int8 = int8
        self.source: ExportSource | None = None

    def encode(self, reference: np.ndarray) -> np.ndarray:
        """(1,3,S,S) float32 in [-1,1] -> features."""
        return self._encoder.run(["features"], {"reference": np.ascontiguousarray(reference, np.float32)})[0]

    def encode_audio_rows(self, rows: np.ndarray) -> np.ndarray:
        """Raw audio feature rows (R, 60) -> encoded rows (R, AUDIO_ROW_WIDTH)."""
        return self._audio.run(["encoded"], {"rows": np.ascontiguousarray(rows, np.float32)})[0]

    def run(
        self,
        features: np.ndarray,
        audio: np.ndarray,
        pose: np.ndarray,
        eyes: np.ndarray,
        outputs: tuple[str, ...] = ("frames", "landmarks"),
    ) -> list[np.ndarray]:
        feed = {
            "features": features,
            "audio": np.ascontiguousarray(audio, np.float32),
            "pose": np.ascontiguousarray(pose, np.float32),
            "eyes": np.ascontiguousarray(eyes, np.float32),
        }
        return self._frame.run(list(outputs), feed)

    # -- the pipeline's backend interface ---------------------------------------------------------------------------

    def encode_reference(self, crop: np.ndarray) -> np.ndarray:
        """(S,S,3) uint8 crop -> features, converted exactly as APB2FacePipeline.encode_reference does."""
        x = np.ascontiguousarray(crop).transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1
        return self.encode(x)

    def step(
        self, features: np.ndarray, windows: np.ndarray, pose: np.ndarray, eyes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, W, AUDIO_ROW_WIDTH) windows of encoded rows + motion -> frames (n, S, S, 3) uint8, landmarks."""
        frames, landmarks = self.run(features, windows, pose, eyes)
        return frames, landmarks


@dataclass
class ExportSource:
    """Where ONNX files for a model live: an export directory, or a checkpoint exported on the fly."""

    directory: Path
    temporary: tempfile.TemporaryDirectory | None = None


def resolve_export(path: str | Path, int8: bool = False) -> ExportSource:
    """An export directory as is; a PyTorch checkpoint directory is exported to a temporary directory first."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        manifest = read_json(path / MANIFEST_FILE)
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            raise UserError("not an apb2face ONNX export manifest", path / MANIFEST_FILE)
        if manifest.get("version") != EXPORT_VERSION:
            raise UserError(
                f"ONNX export version {manifest.get('version')} is not supported (this apb2face reads version "
                f"{EXPORT_VERSION}: export the checkpoint again with `apb2face export`)",
                path / MANIFEST_FILE,
            )
        return ExportSource(path)
    tmp = tempfile.TemporaryDirectory(prefix="apb2face-onnx-")
    start = time.perf_counter()
    try:
        export_onnx(path, Path(tmp.name) / "onnx", int8=int8)
    except BaseException:
        tmp.cleanup()
        raise
    log.info(
        "exported %s to ONNX in %.1f s (save it with `apb2face export` to skip this)",
        path,
        time.perf_counter() - start,
    )
    return ExportSource(Path(tmp.name) / "onnx", tmp)


@dataclass
class LoadedOnnx:
    backend: OnnxBackend
    config: Any
    references: dict[str, np.ndarray]
    meta: dict[str, Any]


def load_onnx(path: str | Path, int8: bool = False, threads: int = DEFAULT_THREADS) -> LoadedOnnx:
    """An ONNX Runtime backend plus the config and bundled identities of an export (or checkpoint) directory."""
    from apb2face.models.modeling import load_config, load_references

    source = resolve_export(path, int8=int8)
    config, raw = load_config(source.directory)
    backend = OnnxBackend(source.directory, int8=int8, threads=threads)
    backend.source = source  # keeps an on-the-fly export's temporary directory alive as long as the backend
    return LoadedOnnx(backend, config, load_references(source.directory, raw), raw.get("meta", {}))
