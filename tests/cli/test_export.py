"""`apb2face export`: writes a new export folder with the usual mode, and never deletes a folder it did not create."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from apb2face.cli.main import main
from apb2face.errors import UserError
from apb2face.inference.export import FRAME_FILE, OnnxBackend


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.fixture
def run_folder(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A training run's folder with its release checkpoint inside (runs/x/latest), as `train` leaves it."""
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run / "latest")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    return run


def test_export_writes_a_new_folder_with_the_usual_mode(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    assert (out / FRAME_FILE).is_file() and (out / "identities" / "astronaut.png").is_file()
    assert json.loads(capsys.readouterr().out)["parity"]["max_abs_diff"] <= 1e-3
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not the 0700 of a private temporary folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]
    (out / FRAME_FILE).write_bytes(b"not onnx")  # a corrupt ONNX file in an export folder
    with pytest.raises(UserError, match="cannot load ONNX model"):
        OnnxBackend(out)


def test_export_refuses_the_folder_that_holds_the_checkpoint(run_folder, capsys):
    before = tree(run_folder)
    argv = ["export", "--checkpoint", str(run_folder / "latest"), "--out", str(run_folder)]
    assert main(argv) == 2
    assert "not empty" in one_line_error(capsys)
    assert tree(run_folder) == before


def test_export_refuses_a_folder_holding_a_users_file(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    assert "not empty" in one_line_error(capsys)
    assert tree(out) == {"notes.txt": b"keep me"}
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tiny_checkpoint)]) == 2
    assert "--out must differ from --checkpoint" in one_line_error(capsys)


def test_export_of_a_folder_that_is_no_checkpoint_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "config.json" in one_line_error(capsys)
    assert not (tmp_path / "x").exists()
