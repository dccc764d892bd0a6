"""Atomic file output: nothing already produced is lost, and no half-written file is ever left behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apb2face.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the target's suffix (or `suffix`) so that writers that pick a format from the extension
    (PyAV, OpenCV, soundfile) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _file_mode())  # mkstemp makes files private (0600); outputs get the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory next to `path`; when the block succeeds it replaces `path` (an existing
    directory there is swapped out and removed), otherwise it is deleted. Readers never see a half-written tree."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_output_dir(out: str | Path) -> Path:
    """Check that OUT can receive a new output folder: it must not exist or be an empty, writable directory."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UserError("output exists and is not a directory", out)
        if any(out.iterdir()):
            raise UserError("output directory exists and is not empty", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output directory is not writable ({exc.strerror})", out) from None
    return out


def remove_partial(out: str | Path) -> None:
    """Remove an output directory left incomplete by a failed run (it never held anything of the user's)."""
    shutil.rmtree(out, ignore_errors=True)


@contextlib.contextmanager
def new_output_dir(out: str | Path) -> Iterator[Path]:
    """An output folder that is new or empty (see `prepare_output_dir`); removed again if the block fails, which
    loses nothing of the user's because it held nothing before."""
    path = prepare_output_dir(out)
    try:
        yield path
    except BaseException:
        remove_partial(path)
        raise


def _file_mode() -> int:
    """0666 minus the process umask: the mode `open()` would have given a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, with sorted keys so that equal content gives equal bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON ({exc})", path) from None
