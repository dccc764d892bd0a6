"""`apb2face evaluate`: report structure and value ranges on a tiny random model, the aggregation on a perfect
"model" (ground truth scored against itself), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apb2face.cli.main import main
from apb2face.data import audio as A
from apb2face.data.format import Dataset
from apb2face.evaluation import evaluate as E
from apb2face.evaluation import metrics as M

from .conftest import dataset_with_identity, make_checkpoint


def test_evaluate_report_structure_and_ranges(
    tiny_dataset: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(tiny_checkpoint),
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--max-frames-per-clip",
            "12",
            "--fid-weights",
            "none",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| SSIM ↑ |" in printed and "ground-truth frames" not in printed
    report = json.loads((out / "report.json").read_text())
    identities = Dataset(tiny_dataset).identities
    for key in E.METRIC_KEYS:
        assert set(report[key]) == {"mean", "per_identity"}, key
        assert sorted(report[key]["per_identity"]) == identities, key
    assert report["fid"]["mean"] is None and "not computed" in report["protocol"]["fid"]
    ssim = report["ssim"]["per_identity"].values()
    assert all(-1 <= v < 0.9 for v in ssim)  # an untrained model is far from the truth
    assert report["ssim"]["mean"] == pytest.approx(np.mean(list(ssim)), abs=1e-6)
    assert 0 < report["psnr"]["mean"] < 40
    for key in ("detection_rate", "detection_rate_haar", "face_mesh_rate", "cpbd"):
        assert 0 <= report[key]["mean"] <= 1
        assert 0 <= report["ground_truth"][key]["mean"] <= 1
    # the synthetic faces are faces to the detector and the landmark model
    assert report["ground_truth"]["detection_rate"]["mean"] >= 0.9
    assert report["ground_truth"]["face_mesh_rate"]["mean"] >= 0.9
    assert report["ground_truth"]["pose_error_deg"]["mean"] < 10
    # the fuser's mouth and the dataset's own landmarks, each against the audio: the synthetic truth follows its
    # speech closely; an untrained fuser's mouth is whatever it is, but it is measured
    assert report["ground_truth"]["lipsync_corr_geometry"]["mean"] > 0.3
    assert -1 <= report["lipsync_corr_geometry"]["mean"] <= 1
    # real-vs-real identity similarity: a real frame against the identity's reference (another real frame)
    assert 0.85 < report["ground_truth"]["csim"]["mean"] <= 1
    assert report["csim"]["mean"] is None or -1 <= report["csim"]["mean"] <= 1  # random weights: often no face
    assert "CSIM" in md_of(out) and "dlib" in report["protocol"]["csim"]
    assert report["protocol"]["frames"] == 2 * 12
    # the do-nothing baseline: the reference scored against the real frames (another frame of the same face)
    copy = report["copy_reference"]
    assert sorted(copy["ssim"]["per_identity"]) == identities
    assert 0.2 < copy["ssim"]["mean"] < 1 and 5 < copy["psnr"]["mean"] < M.PSNR_CAP_DB
    assert all("TRAIN" in src for src in report["protocol"]["references"].values())
    for name in identities:
        assert (out / "strips" / f"{name}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "Copying the reference" in md
    assert "| SSIM ↑ |" in md and "Gaussian window 11x11, sigma 1.5" in md and "BlazeFace" in md and "Haar" in md


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def md_of(out: Path) -> str:
    return (out / "report.md").read_text()


def test_evaluate_fid_weights_path_and_unbundled_identity(tiny_dataset: Path, tmp_path: Path) -> None:
    """--fid-weights takes any TorchScript feature extractor (here a tiny pooling one, so the test is fast; the
    bundled Inception is tested in test_metrics); an identity missing from the checkpoint takes its reference
    from a train clip."""
    import torch
    import torch.nn.functional as F

    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x, 4).flatten(1)

    weights = tmp_path / "pool.pt"
    torch.jit.script(Pool()).save(str(weights))
    ckpt = make_checkpoint(tmp_path / "ckpt", tiny_dataset, identities=["id00"])
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data",
                str(tiny_dataset),
                "--out",
                str(out),
                "--max-frames-per-clip",
                "8",
                "--fid-weights",
                str(weights),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["fid"]["mean"] > 0 and all(v > 0 for v in report["fid"]["per_identity"].values())
    assert "pool.pt" in report["protocol"]["fid"]
    refs = report["protocol"]["references"]
    assert "checkpoint" in refs["id00"] and refs["id01"].startswith("first frame of train clip id01/")


def test_perfect_generation_scores_perfectly(tiny_dataset: Path) -> None:
    """Ground truth scored as if generated: SSIM 1, PSNR at the cap, zero landmark distance, and every other
    measurement equal to the ground-truth row."""
    ds = Dataset(tiny_dataset)
    det = E.open_detectors()
    results = []
    for rec in ds.clips("test"):
        clip = ds.load_clip(rec)
        frames = np.asarray(clip.frames[:16])
        measured = E.measure_frames(frames, det)
        results.append(
            E.ClipResult(
                identity=rec.identity,
                key=rec.key,
                ssim=M.ssim(frames, frames),
                psnr=M.psnr(frames, frames),
                gen=measured,
                gt=measured,
                driving_pose=clip.pose[:16].astype(np.float64),
                driving_eyes=clip.eyes[:16],
                rms=A.rms_per_frame(clip.audio, 16, clip.fps, clip.sample_rate),
                geometry_mouth=E._truth_mouth(np.asarray(clip.landmarks[:16])),
                truth_geometry_mouth=E._truth_mouth(np.asarray(clip.landmarks[:16])),
            )
        )
    gen = E.identity_metrics(results, "gen")
    gt = E.identity_metrics(results, "gt")
    assert gen["ssim"] == 1.0 and gen["psnr"] == M.PSNR_CAP_DB
    assert gen["lmd_mouth"] == 0.0 and gen["lmd_face"] == 0.0 and gen["lmd_frames"] > 0
    det.close()
    keys = ("detection_rate", "detection_rate_haar", "pose_error_deg", "cpbd", "blink_f1", "lipsync_corr_geometry")
    for key in keys:
        assert gen[key] == gt[key]
    assert gen["csim"] == pytest.approx(1.0)  # every generated frame's embedding equals the real frame's


def test_evaluate_bad_input(
    tiny_dataset: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["--data", str(tiny_dataset), "--fid-weights", "none"]
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "a"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--split", "val", *args]) == 2
    assert "no split 'val'" in capsys.readouterr().err
    assert not out.exists()  # no partial output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep me")
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(busy), *args]) == 2
    assert (busy / "x").read_text() == "keep me"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tiny_checkpoint),
                "--out",
                str(tmp_path / "c"),
                "--fid-weights",
                str(tmp_path / "missing.pt"),
                "--data",
                str(tiny_dataset),
            ]
        )
        == 2
    )
    assert "FID weights not found" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../escape", "../../escape"])
def test_evaluate_refuses_identity_names_that_leave_the_output(
    name: str, tiny_dataset: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An identity name from dataset.json becomes strips/<name>.png: '../escape' would land beside strips/,
    '../../escape' beside the output folder. Refused with one line naming dataset.json, nothing written."""
    data = dataset_with_identity(tiny_dataset, tmp_path / "data", name)
    out = tmp_path / "eval"
    args = ["--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out)]
    rc = main(["evaluate", *args, "--max-frames-per-clip", "8", "--fid-weights", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "dataset.json" in err[0] and name in err[0]
    assert not out.exists()
    assert not (tmp_path / "escape.png").exists()


def test_evaluate_prints_the_summary_rendered_from_the_report(tiny_dataset: Path) -> None:
    """The printed summary comes from the report data (not from cutting report.md at a heading): title, the
    generated frames' table, and nothing of the ground-truth or copy tables."""
    ds = Dataset(tiny_dataset)
    per_identity = {name: 0.5 for name in ds.identities}
    report = {key: {"mean": 0.5, "per_identity": per_identity} for key in E.METRIC_KEYS + E.EXTRA_KEYS}
    report["ground_truth"] = {"ssim": {"mean": 0.25, "per_identity": per_identity}}
    report["copy_reference"] = {"ssim": {"mean": 0.75, "per_identity": per_identity}}
    report["protocol"] = {
        "checkpoint": "ckpt",
        "dataset": "data",
        "split": "test",
        "clips": 2,
        "frames": 16,
        "model_image_size": 64,
        "eval_size": 64,
        "references": {n: "checkpoint" for n in ds.identities},
        **{k: k for k in ("ssim", "psnr", "landmarks", "detection", "pose", "blink", "lipsync", "cpbd", "fid")},
        "aggregation": "mean",
    }
    summary = E.report_summary(report)
    assert "| SSIM ↑ | 0.500 | 0.500 | 0.500 |" in summary and "| FID ↓ |" in summary
    assert "ground-truth" not in summary and "Copying" not in summary
    full = E.report_markdown(report)
    assert full.startswith(summary)
    assert "ground-truth" in full and "Copying the reference" in full and "- **aggregation**: mean" in full
