"""Atomic outputs and output folders: nothing of the user's is replaced, no temporary outlives its writer."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from apb2face.errors import UserError
from apb2face.io import (
    STALE_AFTER_S,
    atomic_dir,
    atomic_path,
    new_output_dir,
    prepare_output_dir,
    remove_stale_temporaries,
)


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


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_dir_refuses_a_folder_it_did_not_write_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"notes\.txt.*not replacing it"), atomic_dir(out) as tmp:
        (tmp / "model.onnx").write_text("new")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left either
    (tmp_path / "file").write_text("a file")
    with pytest.raises(UserError, match="not a directory"), atomic_dir(tmp_path / "file"):
        pass
    assert (tmp_path / "file").read_text() == "a file"


def test_atomic_dir_replaces_an_empty_folder_and_its_own_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "weights").write_text("v1")
        (tmp / "sub").mkdir()
    with atomic_dir(out) as tmp:  # saved again (a training checkpoint each N steps): same names, new content
        (tmp / "weights").write_text("v2")
        (tmp / "sub").mkdir()
        (tmp / "extra").write_text("new file")
    assert (out / "weights").read_text() == "v2" and (out / "extra").is_file()
    with pytest.raises(UserError, match="extra"), atomic_dir(out) as tmp:  # "extra" is not written again
        (tmp / "weights").write_text("v3")
    with atomic_dir(out, owned_names=("extra", "sub")) as tmp:  # unless the writer names it as its own
        (tmp / "weights").write_text("v3")
    assert [p.name for p in out.iterdir()] == ["weights"] and (out / "weights").read_text() == "v3"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_gives_folders_the_usual_mode(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "release") as tmp:
        (tmp / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "release").stat().st_mode) == 0o777 & ~umask()  # not mkdtemp's 0700


def make_leftover(path: Path, age_s: float, is_dir: bool = False) -> Path:
    """A temporary as a killed writer leaves it, last modified `age_s` seconds ago."""
    if is_dir:
        path.mkdir()
        (path / "half.bin").write_bytes(b"\0" * 1000)
    else:
        path.write_bytes(b"\0" * 1000)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_writers_remove_their_own_stale_temporaries_and_say_so(tmp_path: Path, caplog) -> None:
    old = STALE_AFTER_S + 5
    stale_file = make_leftover(tmp_path / ".video.k2j4h5x_.mp4", old)
    young_file = make_leftover(tmp_path / ".video.abcdefgh.mp4", 1)  # may be a writer that has not locked it yet
    other_target = make_leftover(tmp_path / ".video.b.abcdefgh.mp4", old)  # a temporary of video.b.mp4
    stale_dir = make_leftover(tmp_path / ".ckpt.tmp-zz11yy22", old, is_dir=True)
    with caplog.at_level(logging.INFO, logger="apb2face.io"):
        with atomic_path(tmp_path / "video.mp4", clean_stale=True) as tmp:
            tmp.write_bytes(b"video")
        with atomic_dir(tmp_path / "ckpt") as tmp:
            (tmp / "w").write_text("w")
    assert not stale_file.exists() and not stale_dir.exists()
    assert young_file.exists() and other_target.exists()
    lines = [r.getMessage() for r in caplog.records if "interrupted run" in r.getMessage()]
    assert len(lines) == 2 and "video.mp4" in lines[0] and "ckpt" in lines[1]


def test_a_live_writers_temporary_is_never_removed(tmp_path: Path) -> None:
    # a slow writer (a paused live stream) holds its temporary for longer than STALE_AFTER_S without writing to it
    with atomic_path(tmp_path / "live.mp4") as live:
        live.write_bytes(b"recording")
        then = time.time() - STALE_AFTER_S - 5
        os.utime(live, (then, then))
        with atomic_path(tmp_path / "live.mp4", clean_stale=True) as second:  # a concurrent writer of the same target
            second.write_bytes(b"second")
        assert live.read_bytes() == b"recording"
    assert (tmp_path / "live.mp4").read_bytes() == b"recording"  # the last writer to finish wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]


def test_a_swapped_out_previous_output_is_kept_while_it_is_the_only_copy(tmp_path: Path) -> None:
    # killed between moving the previous output aside and moving the new one in: the old copy is all there is
    only_copy = make_leftover(tmp_path / ".ckpt.old-a1b2c3d4", STALE_AFTER_S + 5, is_dir=True)
    assert remove_stale_temporaries(tmp_path, r"\.ckpt\.old-[a-z0-9_]{8}", "ckpt", only_if_target=True) == 0
    assert only_copy.exists()
    (tmp_path / "ckpt").mkdir()
    assert remove_stale_temporaries(tmp_path, r"\.ckpt\.old-[a-z0-9_]{8}", "ckpt", only_if_target=True) == 1000
    assert not only_copy.exists()
