"""Keep native libraries' log lines off the terminal while a command runs.

mediapipe's C++ side (absl logging, TFLite) writes INFO/WARNING lines straight to file descriptor 2, from its own
threads, at times Python does not control (when a graph starts, when a model first sees a face). Commands promise
that a bad input gives exactly one line on stderr, so during a command fd 2 is a pipe read by a thread that passes
everything through except those lines. Python's own output (progress bars, warnings, errors) is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

# absl:   "W0000 00:00:1795523900.564348   21085 inference_feedback_manager.cc:114] ..."
# TFLite: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
# absl:   "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] |INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\))"
)
_PREFIXES = (b"INFO: Created TensorFlow Lite", b"WARNING: All log messages before absl")
# TFLite writes "INFO: " and the rest of its line in separate writes from its own thread; a line of ours can land
# between them ("INFO: apb2face generate: error: ..." then "Created TensorFlow Lite ..."): the torn-off prefix is
# removed from our line and the rest of the native line dropped on its own
_TORN_PREFIXES = (b"INFO: ", b"WARNING: ")
_OUR_LINE = b"apb2face"
_NATIVE_REST = re.compile(rb"^(?:Created TensorFlow Lite|All log messages before absl::InitializeLog\(\))")
_JOIN_TIMEOUT_S = 2.0


def _may_become_native(partial: bytes) -> bool:
    """Could this unfinished line still turn out to be a native log line? (Then hold it until its newline.)"""
    if re.match(rb"^[IWEF]\d{0,4}$|^[IWEF]\d{4} ", partial):
        return True
    if partial.startswith(_TORN_PREFIXES):  # a torn prefix in front of a line of ours not finished yet: print()
        return True  # writes the text and its newline separately, so the pump can read between them
    return any(p.startswith(partial) or partial.startswith(p) for p in _PREFIXES)


def _is_native(line: bytes) -> bool:
    return bool(NATIVE_LINE.match(line) or _NATIVE_REST.match(line))


def _untorn(line: bytes) -> bytes:
    """Our own line without a native line's torn-off prefix in front of it (see _TORN_PREFIXES)."""
    for prefix in _TORN_PREFIXES:
        if line.startswith(prefix) and line[len(prefix) :].startswith(_OUR_LINE):
            return line[len(prefix) :]
    return line


def _kept(line: bytes, finished: bool = True) -> bytes:
    """What passes of one line: a complete one (its newline included), or, when the block ends, the text left
    without a newline. A progress bar redraws its line after carriage returns, so a native line, or the torn prefix
    in front of ours, may follow the last of them: the bar is kept. An unfinished native line is dropped too (TFLite's
    thread may have written only "INFO: " when the command ended), or it would prefix the error line printed after
    the block."""
    head, cr, tail = line.rpartition(b"\r")
    tail = _untorn(tail)
    if _is_native(tail) or (not finished and _may_become_native(tail)):
        return head + cr
    return head + cr + tail + (b"\n" if finished else b"")


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(map(_kept, lines))
        if pending and not _may_become_native(pending.rsplit(b"\r", 1)[-1]):
            out, pending = out + pending, b""
        if out:
            _write_all(out_fd, out)
    if pending:
        _write_all(out_fd, _kept(pending, finished=False))
    os.close(read_fd)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


@contextlib.contextmanager
def native_log_filter() -> Iterator[None]:
    """Route fd 2 through a filter that drops native libraries' log lines for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return
    thread = threading.Thread(target=_pump, args=(read_fd, saved), name="native-log-filter", daemon=True)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # drops our last handle on the pipe's write end: the pump sees EOF and drains
        thread.join(_JOIN_TIMEOUT_S)  # a forked child still holding the pipe would keep it open; don't hang
        if not thread.is_alive():
            os.close(saved)
