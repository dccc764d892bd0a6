"""ONNX export: parity with PyTorch, the ONNX Runtime backend inside the pipeline, INT8 (the command: tests/cli)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from apb2face.errors import UserError
from apb2face.inference.export import (
    FRAME_INT8_FILE,
    MANIFEST_FILE,
    OnnxBackend,
    encoded_windows,
    example_inputs,
    export_onnx,
    load_onnx,
)
from apb2face.inference.pipeline import APB2FacePipeline
from apb2face.models.apb2face import APB2Face
from apb2face.models.config import ModelConfig
from apb2face.models.modeling import save_pretrained


def make_checkpoint(
    directory: Path,
    generator: str,
    width: float = 0.25,
    seed: int = 0,
    sketch: bool = False,
    warp: bool = False,
    fast: bool = False,
) -> Path:
    """A random-weight checkpoint whose every layer matters (AdaConvs initialised N(0, 0.02) like upstream)."""
    torch.manual_seed(seed)
    config = ModelConfig(
        image_size=64,
        generator=generator,
        generator_width=width,
        adaconv_init="normal",
        geometry_sketch=sketch,
        reference_warp=warp,
        # the realtime preset's speed options: a 1/8 trunk and the sub-pixel head
        trunk_stride=8 if fast else 4,
        subpixel_head=fast,
    )
    model = APB2Face(config).eval()
    with torch.no_grad():  # zero-initialised layers (mobile blocks, head, sketch input) get real weights
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p) * (0.02 if p.any() else 0.1))
    face = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    if warp and generator == "skip":  # a warp head that moves pixels and pastes part of the reference
        with torch.no_grad():
            model.generator.warp.head.bias.copy_(torch.tensor([0.3, -0.2, 0.5]))
    name = generator + ("_sketch" if sketch else "") + ("_warp" if warp else "") + ("_fast" if fast else "")
    return save_pretrained(model, directory / name, references={"anna": face})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    found = {g: make_checkpoint(root, g) for g in ("paper", "mobile", "skip")}
    return {
        **found,
        "skip_sketch": make_checkpoint(root, "skip", sketch=True),
        "mobile_sketch": make_checkpoint(root, "mobile", sketch=True),
        "skip_sketch_warp": make_checkpoint(root, "skip", sketch=True, warp=True),
        "mobile_sketch_fast": make_checkpoint(root, "mobile", width=0.67, sketch=True, fast=True),
        "mobile_sketch_warp_fast": make_checkpoint(root, "mobile", width=0.67, sketch=True, warp=True, fast=True),
    }


@pytest.mark.parametrize(
    "generator",
    [
        "paper",
        "mobile",
        "skip",
        "skip_sketch",
        "mobile_sketch",
        "skip_sketch_warp",
        "mobile_sketch_fast",
        "mobile_sketch_warp_fast",
    ],
)
def test_onnx_matches_pytorch(checkpoints, tmp_path, generator):
    manifest = export_onnx(checkpoints[generator], tmp_path / "onnx")
    parity = manifest["parity"]
    assert parity["max_abs_diff"] <= 1e-3
    assert parity["features_max_abs_diff"] <= 1e-3
    assert parity["audio_max_abs_diff"] <= 1e-3
    assert parity["landmarks_max_abs_diff"] <= 1e-3
    assert parity["frames_max_level_diff"] <= 1
    assert json.loads((tmp_path / "onnx" / MANIFEST_FILE).read_text())["generator"] == generator.split("_")[0]
    # independent check on other inputs and another batch size than the exported example
    from apb2face.models.modeling import load_pretrained

    model = load_pretrained(checkpoints[generator]).model
    ex = example_inputs(model.config, batch=5, seed=7)
    backend = OnnxBackend(tmp_path / "onnx")
    # audio rows through the audio encoder graph, then windows of them through the frame graph (as inference runs),
    # against PyTorch's whole-window fuser
    windows = encoded_windows(backend.encode_audio_rows, ex["audio"])
    image, landmarks = backend.run(
        backend.encode(ex["reference"]), windows, ex["pose"], ex["eyes"], outputs=("image", "landmarks")
    )
    with torch.no_grad():
        ref_image, ref_landmarks = model(
            torch.from_numpy(ex["reference"]).expand(5, -1, -1, -1),
            torch.from_numpy(ex["audio"]),
            torch.from_numpy(ex["pose"]),
            torch.from_numpy(ex["eyes"]),
        )
    assert image.shape == (5, 3, 64, 64)
    assert np.abs(image - ref_image.numpy()).max() <= 1e-3
    assert np.abs(landmarks - ref_landmarks.numpy()).max() <= 1e-3
    # the output depends on the audio (not a constant graph)
    assert np.abs(image[0] - image[1]).mean() > 1e-3


def test_pipeline_onnx_backend_equals_torch(checkpoints, tmp_path):
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    torch_out = APB2FacePipeline.from_pretrained(checkpoints["mobile"])("anna", audio, sample_rate=16000, seed=1)
    export_onnx(checkpoints["mobile"], tmp_path / "onnx")
    for source in (tmp_path / "onnx", checkpoints["mobile"]):  # an export, and a checkpoint exported on the fly
        pipe = APB2FacePipeline.from_pretrained(source, backend="onnx")
        assert pipe.model is None and pipe.identities == ["anna"]
        out = pipe("anna", audio, sample_rate=16000, seed=1)
        assert out.frames.shape == torch_out.frames.shape == (25, 64, 64, 3)
        assert np.abs(out.frames.astype(int) - torch_out.frames.astype(int)).max() <= 1
        np.testing.assert_allclose(out.landmarks, torch_out.landmarks, atol=1e-4)


def test_int8_export_records_its_ssim(checkpoints, tmp_path):
    manifest = export_onnx(checkpoints["paper"], tmp_path / "onnx", int8=True)
    assert (tmp_path / "onnx" / FRAME_INT8_FILE).is_file()
    int8 = manifest["int8"]
    assert int8["op_types"] == ["MatMul"] and int8["mode"] == "dynamic"
    # quantisation changes the output a little, not a lot
    assert 0.5 < int8["ssim_vs_fp32"] < 1.0
    loaded = load_onnx(tmp_path / "onnx", int8=True)
    assert loaded.backend.int8
    with pytest.raises(UserError, match="--int8"):
        (tmp_path / "onnx" / FRAME_INT8_FILE).unlink()
        OnnxBackend(tmp_path / "onnx", int8=True)


def test_an_export_of_another_format_version_asks_for_a_new_export(checkpoints, tmp_path):
    from apb2face.inference.export import AUDIO_FILE, resolve_export

    export_onnx(checkpoints["mobile"], tmp_path / "onnx")
    assert (tmp_path / "onnx" / AUDIO_FILE).is_file()
    manifest = json.loads((tmp_path / "onnx" / MANIFEST_FILE).read_text())
    assert manifest["files"]["audio_encoder"] == AUDIO_FILE
    # version 1 exports had no audio encoder: their frame graph takes raw windows
    (tmp_path / "onnx" / MANIFEST_FILE).write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(UserError, match="export the checkpoint again"):
        resolve_export(tmp_path / "onnx")
