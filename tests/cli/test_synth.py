"""`apb2face synth` on the command line: --out DIR and the positional OUT name the same output folder; bad output
folders and bad flags are one line and exit 2, leaving nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apb2face.cli.main import main
from apb2face.data.format import Dataset

SMALL = ("--identities", "1", "--clips-per-identity", "1", "--size", "64", "--workers", "1", "--no-videos")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apb2face", "synth", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("spelling", ["--out", "positional", "both"])
def test_out_and_positional_name_the_output(tmp_path: Path, spelling: str) -> None:
    out = tmp_path / "data"
    where = {"--out": ["--out", str(out)], "positional": [str(out)], "both": [str(out), "--out", str(out)]}[spelling]
    assert main(["synth", *where, *SMALL]) == 0
    assert [c.identity for c in Dataset(out).clips()] == ["id00"]


def test_two_different_outputs_or_none_are_refused(tmp_path: Path) -> None:
    res = run_cli(tmp_path / "a", "--out", tmp_path / "b", *SMALL)
    assert res.returncode == 2 and "two output directories" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(*SMALL)
    assert res.returncode == 2 and "--out DIR" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["not_empty", "unwritable"])
def test_bad_out_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    if case == "not_empty":
        out = tmp_path / "full"
        out.mkdir()
        (out / "precious.txt").write_text("keep")
    else:
        (tmp_path / "a_file").write_text("")
        out = tmp_path / "a_file" / "out"
    res = run_cli("--out", out, "--identities", "1", "--clips-per-identity", "1")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in res.stderr
    if case == "not_empty":
        assert (out / "precious.txt").read_text() == "keep" and len(list(out.iterdir())) == 1


def test_bad_flags_are_user_errors(tmp_path: Path) -> None:
    res = run_cli("--out", tmp_path / "o", "--size", "65")
    assert res.returncode == 2 and "size must be even" in res.stderr and not (tmp_path / "o").exists()
