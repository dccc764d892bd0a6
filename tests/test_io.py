from __future__ import annotations

import os

import pytest

from apb2face.io import atomic_path


def test_atomic_path_gives_outputs_the_usual_mode_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "result.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "done"
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out" / "broken.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.txt"]
