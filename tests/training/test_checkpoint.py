"""The run folder: metrics appended whole and read past a torn tail, config comparison, stale temporaries."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from apb2face.config import load
from apb2face.errors import UserError
from apb2face.training.checkpoint import (
    METRICS_FILE,
    append_metrics,
    config_differences,
    read_metrics,
    remove_stale_temporaries_of_run,
    trim_metrics,
)
from apb2face.training.config import RunConfig


def test_metrics_append_whole_lines_and_read_past_a_torn_tail(tmp_path):
    for step in (1, 2, 3):
        append_metrics(tmp_path, {"step": step, "loss_g": 0.5})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    with open(tmp_path / METRICS_FILE, "a") as f:
        f.write('{"step": 4, "loss')  # a run killed in the middle of a write
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    trim_metrics(tmp_path, 2)
    assert (tmp_path / METRICS_FILE).read_text().splitlines() == [
        json.dumps({"loss_g": 0.5, "step": 1}),
        json.dumps({"loss_g": 0.5, "step": 2}),
    ]


def test_damaged_metrics_line_before_the_tail_is_user_error(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(UserError, match="line 2"):
        read_metrics(tmp_path)


def test_config_differences_name_the_keys():
    a = load(RunConfig, "tiny", ["train.steps=2"])
    assert config_differences(a, load(RunConfig, "tiny", ["train.steps=2"])) == []
    differences = config_differences(a, load(RunConfig, "paper"))
    assert "train.image_interval: 2 != 200" in differences
    assert any(d.startswith("model.image_size:") for d in differences)


def age(path: Path, seconds: float = 3600) -> None:
    """Make a leftover look as old as one a killed run left (apb2face.io leaves young temporaries alone)."""
    old = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (old, old))


def test_stale_temporaries_of_a_killed_run_are_removed_and_logged(tmp_path, caplog):
    ckpts, images = tmp_path / "checkpoints", tmp_path / "images"
    (ckpts / "step_0000002").mkdir(parents=True)
    (ckpts / "step_0000002" / "state.pt").write_bytes(b"kept")
    leftovers = [ckpts / ".step_0000004.tmp-abcd1234", tmp_path / ".latest.tmp-x1y2z3w4"]
    for folder in leftovers:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (images).mkdir()
    (images / ".step_0000004.a1b2c3d4.png").write_bytes(b"\0" * 10)
    for path in [*leftovers, images / ".step_0000004.a1b2c3d4.png"]:
        age(path)
    young = ckpts / ".step_0000006.tmp-young123"  # a live writer's, or too recent to judge
    young.mkdir()
    with caplog.at_level(logging.INFO):
        freed = remove_stale_temporaries_of_run(tmp_path)
    assert freed >= 2010
    assert not any(p.exists() for p in leftovers) and not (images / ".step_0000004.a1b2c3d4.png").exists()
    assert young.exists() and (ckpts / "step_0000002" / "state.pt").read_bytes() == b"kept"
    assert "interrupted" in caplog.text
