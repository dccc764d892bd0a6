"""`apb2face train` / `apb2face info` from the command line, and 2-process DDP training under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apb2face.cli.main import main
from apb2face.config import load
from apb2face.training.checkpoint import list_checkpoints
from apb2face.training.config import RunConfig
from apb2face.training.trainer import Trainer


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apb2face", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["train", "info"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out
    if command == "train":
        assert "--max-minutes" in out and "--resume" in out


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
    assert not (tmp_path / "run").exists()  # a refused dataset leaves no run folder behind


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


def test_train_cli_takes_several_datasets(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    data = ["--data", str(tiny_dataset), "--data", str(tiny_dataset)]
    result = cli("train", *data, "--config", "tiny", "--out", str(run), "train.steps=1")
    assert result.returncode == 0, result.stderr
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["data"] == [str(tiny_dataset.resolve())] * 2 and recorded["data_repeats"] == [1, 1]


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


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


@pytest.fixture(scope="module")
def reference_losses(tiny_dataset, tmp_path_factory) -> list[float]:
    """loss_g of the first 12 steps of an uninterrupted run (the schedule of STOP_ARGS)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    config = load(RunConfig, "tiny", ["train.steps=40", "train.ckpt_interval=1000"])
    Trainer(config, tiny_dataset, run, max_steps=12).setup().fit()
    return [json.loads(line)["loss_g"] for line in (run / "metrics.jsonl").read_text().splitlines()]


STOP_ARGS = ["--config", "tiny", "train.steps=40", "train.image_interval=1000"]


def start_and_stop(tiny_dataset: Path, run: Path, sig: int, after_steps: int, *extra: str) -> int:
    """Start `apb2face train`, send `sig` once `after_steps` steps are logged; its exit status."""
    command = [sys.executable, "-m", "apb2face", "train", "--data", str(tiny_dataset), "--out", str(run)]
    process = subprocess.Popen([*command, *STOP_ARGS, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(steps_logged(run)) < after_steps and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(sig)
    out, err = process.communicate(timeout=240)
    start_and_stop.output = out.decode() + err.decode()
    return process.returncode


def resume_to(tiny_dataset: Path, run: Path, step: int, *extra: str) -> subprocess.CompletedProcess:
    return cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--out",
        str(run),
        *STOP_ARGS,
        *extra,
        "--resume",
        "--max-steps",
        str(step),
    )


def test_ctrl_c_saves_a_checkpoint_and_the_same_command_resumes_exactly(tiny_dataset, tmp_path, reference_losses):
    run = tmp_path / "run"
    status = start_and_stop(tiny_dataset, run, signal.SIGINT, 2, "train.ckpt_interval=1000")
    assert status == 130, start_and_stop.output
    assert "--resume" in start_and_stop.output and "Traceback" not in start_and_stop.output
    stopped = steps_logged(run)[-1]
    assert [int(p.name.split("_")[1]) for p in list_checkpoints(run)] == [stopped]  # saved on the way out
    target = min(stopped + 2, len(reference_losses))
    result = resume_to(tiny_dataset, run, target, "train.ckpt_interval=1000")  # same command + --resume
    assert result.returncode == 0, result.stderr
    losses = [json.loads(line)["loss_g"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(reference_losses[:target], abs=1e-5)


def test_sigkill_at_any_moment_resumes_exactly(tiny_dataset, tmp_path, reference_losses):
    run = tmp_path / "run"
    start_and_stop(tiny_dataset, run, signal.SIGKILL, 3, "train.ckpt_interval=2")
    assert list_checkpoints(run), start_and_stop.output
    result = resume_to(tiny_dataset, run, len(reference_losses), "train.ckpt_interval=2")
    assert result.returncode == 0, result.stderr
    losses = [json.loads(line)["loss_g"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(reference_losses, abs=1e-5)


def test_resume_accepts_the_same_config_and_names_what_a_different_one_changes(tiny_dataset, tmp_path, capsys):
    from apb2face.cli.main import build_parser
    from apb2face.cli.train import _run_config
    from apb2face.io import write_json

    run = tmp_path / "run"
    config = load(RunConfig, "tiny", ["train.steps=2"])
    write_json(run / "run.json", {"config": __import__("dataclasses").asdict(config), "data": str(tiny_dataset)})
    same = build_parser().parse_args(["train", "--out", str(run), "--resume", "--config", "tiny", "train.steps=2"])
    assert _run_config(same) == (config, [str(tiny_dataset)], None)
    assert main(["train", "--out", str(run), "--resume", "--config", "paper", "train.steps=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from the run being resumed" in err and "model.image_size" in err


def test_disk_full_during_a_checkpoint_save_is_one_line_and_keeps_the_previous(tiny_dataset, tmp_path):
    """The file-size limit makes every large write fail as a full disk does (EFBIG instead of ENOSPC)."""
    import resource

    run = tmp_path / "run"
    config = load(RunConfig, "tiny", ["train.steps=4", "train.ckpt_interval=1"])
    Trainer(config, tiny_dataset, run, max_steps=1).setup().fit()
    limit = (run / "checkpoints" / "step_0000001" / "model.safetensors").stat().st_size // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "apb2face", "train", "--out", str(run), "--resume", "--max-steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr  # log lines, then the error as the last line
    assert "cannot save the step 2 checkpoint" in result.stderr.strip().splitlines()[-1]
    assert [p.name for p in list_checkpoints(run)] == ["step_0000001"]
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert Trainer(config, tiny_dataset, run, resume=True).setup().step == 1


def test_max_minutes_and_fit_schedule_are_checked(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--fit-schedule"]) == 2
    assert "--fit-schedule needs --max-minutes" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--max-minutes", "0"]) == 2
