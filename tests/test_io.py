"""Atomic outputs and output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from apb2face.errors import UserError
from apb2face.io import new_output_dir, prepare_output_dir


def test_prepare_output_dir(tmp_path: Path) -> None:
    assert prepare_output_dir(tmp_path / "new").is_dir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        prepare_output_dir(tmp_path / "full")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        prepare_output_dir(tmp_path / "file")
    with pytest.raises(UserError, match="not writable"):
        prepare_output_dir(tmp_path / "file" / "sub")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_new_output_dir_removed_on_failure_and_kept_on_success(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_output_dir(tmp_path / "failed") as out:
        (out / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not (tmp_path / "failed").exists()
    with new_output_dir(tmp_path / "done") as out:
        (out / "all.txt").write_text("all")
    assert (tmp_path / "done" / "all.txt").read_text() == "all"
