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


def test_overrides_may_stand_among_the_options_of_every_command_that_takes_them() -> None:
    from apb2face.cli.main import parse

    train = parse(["train", "train.lr=1e-4", "--out", "run", "train.steps=2"])
    assert train.overrides == ["train.lr=1e-4", "train.steps=2"]
    prepare = parse(["prepare", "a.mp4", "size=128", "--out", "ds", "min_clip_seconds=0.5"])
    assert prepare.inputs == ["a.mp4", "size=128"] and prepare.overrides == ["min_clip_seconds=0.5"]
    with pytest.raises(SystemExit):
        parse(["generate", "--reference", "x", "--audio", "a.wav", "--out", "o.mp4", "seed=3"])


def test_a_shipped_checkpoint_is_named_instead_of_a_folder(capsys, tmp_path, monkeypatch):
    """`--checkpoint live` is the checkpoint shipped in the package; a missing one that is no shipped name is one
    line and exit 2."""
    monkeypatch.chdir(tmp_path)
    assert main(["info", "--checkpoint", "live", "--json"]) == 0
    assert '"skip"' in capsys.readouterr().out
    assert main(["info", "--checkpoint", "no-such-folder"]) == 2
    assert "no-such-folder" in capsys.readouterr().err
