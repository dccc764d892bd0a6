"""`apb2face train` / `apb2face info` from the command line, and 2-process DDP training under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apb2face.cli.main import main


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apb2face", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["train", "info"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_info_json_paper(capsys):
    assert main(["info", "--config", "paper", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    generator = next(m for m in report["modules"] if m["name"] == "generator")
    assert generator["params"] == 4_085_200
    assert generator["gmac"] == pytest.approx(9.87, abs=0.01)  # the official model/NAS_GAN.py at 256 px, hook count
    assert {c["name"] for c in generator["children"]} == {"stem", "cells", "adaconvs", "decoder"}
    assert report["discriminator"]["params"] == 2_766_913


def test_train_missing_dataset_one_line_exit_2(tmp_path):
    result = cli("train", "--data", str(tmp_path / "none"), "--config", "tiny", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "dataset.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_cli_and_resume(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--config",
        "tiny",
        "--out",
        str(run),
        "--max-steps",
        "1",
        "train.steps=2",
    )
    assert result.returncode == 0, result.stderr
    result = cli("train", "--out", str(run), "--resume")
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert (run / "final" / "model.safetensors").is_file()


def test_ddp_two_cpu_processes_match_one_process(tiny_dataset, tmp_path):
    common = [
        "--data",
        str(tiny_dataset),
        "--config",
        "tiny",
        "train.steps=2",
        "train.batch_size=4",
        "train.ckpt_interval=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "apb2face",
            "train",
            "--out",
            str(tmp_path / "ddp"),
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, "-m", "apb2face", "train", "--out", str(tmp_path / "one"), *common],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    def rows(run: Path) -> list[dict]:
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    a, b = rows(tmp_path / "ddp"), rows(tmp_path / "one")
    assert [r["step"] for r in a] == [1, 2]  # rank 0 only writes: one line per step
    for ra, rb in zip(a, b):
        for key in ("loss_g", "loss_d", "loss_l1", "loss_geometry"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-3, abs=1e-4), (ra["step"], key)
    assert (tmp_path / "ddp" / "final" / "model.safetensors").is_file()
