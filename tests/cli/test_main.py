"""Guards on the command line as a whole: every command answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from apb2face.cli.main import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_prints_its_usage_for_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: apb2face {command} ")
    assert "options:" in out


def test_the_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(name in out for name in COMMANDS)


def test_a_reader_that_stops_early_gets_no_traceback():
    """`apb2face identities | head -1`: the pipe closes before the listing is printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "apb2face", "identities"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # long before the interpreter has started and loaded the checkpoint
    _, err = process.communicate(timeout=300)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert process.returncode == 141
