"""`apb2face grid` and `apb2face decouple` on a tiny random checkpoint: outputs, their structure, bad input; and the
decoupling check's logic on known responses."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from apb2face.cli.main import main
from apb2face.data.video import probe
from apb2face.evaluation import decouple as D

from .conftest import dataset_with_identity


def test_grid_outputs(tiny_dataset: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert (
        main(
            [
                "grid",
                "--checkpoint",
                str(tiny_checkpoint),
                "--data",
                str(tiny_dataset),
                "--out",
                str(out),
                "--max-frames",
                "10",
            ]
        )
        == 0
    )
    summary = json.loads((out / "grid.json").read_text())
    assert summary["references"] == summary["drivers"] == ["id00", "id01"]
    assert all(key.split("/")[0] == name for name, key in summary["driving_clips"].items())
    png = cv2.imread(str(out / "grid.png"))
    # 3 columns (reference + 2 drivers) and 3 rows (driving frames + 2 references) of 128 px tiles (64 px x2)
    assert png.shape[1] >= 3 * 128 and png.shape[0] >= 3 * 128
    matrix = probe(out / "grid.mp4")
    assert matrix.num_frames == 10 and not matrix.has_audio
    for name in ("id00", "id01"):
        column = probe(out / "columns" / f"{name}.mp4")
        assert column.has_audio and column.num_frames == 10


def test_grid_refuses_a_driver_name_that_leaves_the_output(
    tiny_dataset: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A driving identity becomes columns/<name>.mp4: '../../escape' would be written beside the output folder."""
    data = dataset_with_identity(tiny_dataset, tmp_path / "data", "../../escape")
    out = tmp_path / "grid"
    args = ["--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out), "--max-frames", "8"]
    assert main(["grid", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset.json" in err[0] and "../../escape" in err[0]
    assert not out.exists() and not (tmp_path / "escape.mp4").exists()


def test_decouple_outputs(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dec"
    assert (
        main(
            [
                "decouple",
                "--checkpoint",
                str(tiny_checkpoint),
                "--reference",
                "id01",
                "--out",
                str(out),
                "--steps",
                "3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "overall:" in printed
    report = json.loads((out / "decouple.json").read_text())
    assert set(report["sweeps"]) == {"yaw", "pitch", "roll", "blink"}
    for sweep in report["sweeps"].values():
        assert len(sweep["swept"]) == len(sweep["measured"]) == 3
        assert {"spearman", "mouth_std", "passed"} <= set(sweep)
    assert report["sweeps"]["yaw"]["swept"] == [-25.0, 0.0, 25.0]
    assert report["sweeps"]["blink"]["swept"] == [1.0, 0.5, 0.0]
    image = cv2.imread(str(out / "decouple.png"))
    assert image.shape[1] >= 4 * 128  # reference + 3 sweep values


def test_decouple_bad_reference(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dec"
    assert main(["decouple", "--checkpoint", str(tiny_checkpoint), "--reference", "nobody", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nobody" in err[0]
    assert not out.exists()


def test_check_sweep_logic() -> None:
    cfg = D.DecoupleConfig(steps=5)
    values = np.linspace(-20, 20, 5)
    pose = np.zeros((5, 3))
    pose[:, 0] = values * 0.6 + np.array([0, 1, -1, 0.5, 0])  # follows, compressed and noisy but monotonic
    good = {"pose": pose, "ear": np.full(5, 0.3), "mouth": np.array([0.02, 0.03, 0.02, 0.025, 0.02])}
    r = D.check_sweep("yaw", values, good, cfg)
    assert r["spearman"] == pytest.approx(1.0) and r["passed"]
    talking = dict(good, mouth=np.array([0.0, 0.3, 0.0, 0.3, 0.0]))
    r = D.check_sweep("yaw", values, talking, cfg)
    assert r["follows"] and not r["mouth_still"] and not r["passed"]
    r = D.check_sweep("pitch", values, good, cfg)  # pitch never moved: no rank correlation
    assert r["spearman"] is None and not r["passed"]
    blink = dict(good, ear=np.array([0.30, 0.25, 0.2, 0.12, 0.08]))
    r = D.check_sweep("blink", np.linspace(1, 0, 5), blink, cfg)
    assert r["spearman"] == pytest.approx(1.0) and r["passed"]
