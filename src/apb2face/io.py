"""Atomic file output: nothing already produced is lost, and no half-written file is ever left behind.

A writer works on a hidden temporary next to its target (`.NAME.XXXXXXXX.ext` for a file, `.NAME.tmp-XXXXXXXX` for a
folder) and holds an advisory lock on it while it works. A process killed with SIGKILL leaves its temporary behind;
the next writer of the same target removes such leftovers at its start (only unlocked ones at least
STALE_AFTER_S old, so a concurrent writer's live temporary is never touched) and says so in one log line: every
folder writer, and file writers of large outputs (videos: `atomic_path(..., clean_stale=True)`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from apb2face.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, so leftovers are never judged stale and never removed
    fcntl = None

log = logging.getLogger(__name__)

STALE_AFTER_S = 60.0  # a temporary younger than this may be one whose writer has not taken its lock yet
_RANDOM = "[a-z0-9_]{8}"  # the random part of tempfile's names (mkstemp, mkdtemp)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, clean_stale: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the target's suffix (or `suffix`) so that writers that pick a format from the extension
    (PyAV, OpenCV, soundfile) still work. clean_stale: first remove this target's temporaries left by killed writers
    (for large outputs such as videos; it lists the folder, which small files written by the thousand do not need).
    """
    path = Path(path)
    suffix = suffix or path.suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temporaries(path.parent, re.escape(f".{path.stem}.") + _RANDOM + re.escape(suffix), path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    tmp_path = Path(tmp)
    try:
        _lock(fd)  # held until the block ends: tells a later writer's cleanup that this temporary is alive
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _file_mode())  # mkstemp makes files private (0600); outputs get the usual mode
        os.replace(tmp_path, path)
    finally:
        os.close(fd)
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, owned_names: Collection[str] = ()) -> Iterator[Path]:
    """Yield a fresh temporary directory next to `path`; when the block succeeds it takes `path`'s place, otherwise
    it is deleted. Readers never see a half-written tree.

    atomic_dir never removes what it did not write: an existing `path` is replaced only when it is empty, or when
    every entry in it has a namesake in the new tree or is one of `owned_names` (the optional entries this writer
    may have written before): a previous output of the same writer, e.g. a checkpoint saved again. Any other folder
    (one holding a user's file, or the folder that holds the source checkpoint) is refused with a UserError and left
    as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, re.escape(f".{path.name}.tmp-") + _RANDOM, path.name)
    remove_stale_temporaries(path.parent, re.escape(f".{path.name}.old-") + _RANDOM, path.name, only_if_target=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        _lock(fd)
        yield tmp
        os.chmod(tmp, _dir_mode())  # mkdtemp makes folders private (0700); outputs get the usual mode
        for file in tmp.rglob("*"):  # some writers (safetensors) make their files private (0600) too
            if file.is_file() and not file.is_symlink() and stat.S_IMODE(file.stat().st_mode) == 0o600:
                os.chmod(file, _file_mode())
        _replace_dir(tmp, path, frozenset(owned_names))
    finally:
        os.close(fd)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, path: Path, owned_names: frozenset[str]) -> None:
    if not path.exists() and not path.is_symlink():
        os.replace(new, path)
        return
    if not path.is_dir() or path.is_symlink():
        raise UserError("output exists and is not a directory; not replacing it", path)
    unknown = sorted({p.name for p in path.iterdir()} - {p.name for p in new.iterdir()} - owned_names)
    if unknown:
        shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise UserError(f"output directory holds files this command does not write ({shown}); not replacing it", path)
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, old / path.name)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_temporaries(folder: Path, pattern: str, target: str, only_if_target: bool = False) -> int:
    """Remove the temporaries in `folder` whose names match `pattern` (a regular expression) that an interrupted
    writer of `target` left: unlocked and at least STALE_AFTER_S old. only_if_target: only while `target` exists
    (a swapped-out previous output is the only copy until the new one is in place). Returns the bytes freed."""
    if fcntl is None or (only_if_target and not (folder / target).exists()):
        return 0
    name = re.compile(pattern + r"\Z")
    try:
        candidates = [entry for entry in os.scandir(folder) if name.match(entry.name)]
    except OSError:
        return 0
    removed, freed = 0, 0
    for entry in candidates:
        size = _stale_size(Path(entry.path))
        if size is None:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            _unlink(entry.path)
        removed, freed = removed + 1, freed + size
    if removed:
        log.info(
            "removed %d temporary file%s of %s left by an interrupted run (%.1f MB)",
            removed,
            "" if removed == 1 else "s",
            folder / target,
            freed / 1e6,
        )
    return freed


def _stale_size(path: Path) -> int | None:
    """The bytes under `path` if it is an abandoned temporary (old enough, and nobody holds its lock), else None."""
    try:
        if time.time() - path.lstat().st_mtime < STALE_AFTER_S or path.is_symlink():
            return None
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by os.close; fails while a live writer holds it
    except OSError:
        return None
    finally:
        os.close(fd)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    """0666 minus the process umask: the mode `open()` would have given a new file."""
    return 0o666 & ~_umask()


def _dir_mode() -> int:
    """0777 minus the process umask: the mode `mkdir` would have given a new folder."""
    return 0o777 & ~_umask()


def cache_root() -> Path:
    """Where work that can be redone is kept between runs ($APB2FACE_CACHE, else the XDG cache folder): regenerated
    built-in data, avatar clips' face tracks."""
    if os.environ.get("APB2FACE_CACHE"):
        return Path(os.environ["APB2FACE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apb2face"


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
