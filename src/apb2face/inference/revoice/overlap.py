"""Stages of a re-voice run side by side: decoding ahead of the model (`prefetch`) and encoding behind it
(`SerialWorker`), each in its own thread. FFmpeg (PyAV), OpenCV, NumPy and torch release the GIL while they work, so
on two or more cores the whole runs at about the pace of its slowest stage instead of the sum of all of them.

Both keep order, hold at most `depth` items (memory stays flat however long the video), and pass a failure on as
the original exception object (its traceback included) to the thread that drives them; leaving their `with` block
stops and joins the thread, so nothing touches a reader or a writer after its owner has closed it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05  # how often a blocked thread checks whether it has been told to stop
_DONE = object()


class _Failed:
    """A worker's exception, queued in place of its next item."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextlib.contextmanager
def prefetch(items: Iterable[T], depth: int, name: str = "prefetch") -> Iterator[Iterator[T]]:
    """`items` iterated in a worker thread up to `depth` items ahead of the consumer (depth < 1: in the caller's
    thread, as a plain iterator). An exception raised by `items` is raised by the consumer's `next`, unchanged."""
    if depth < 1:
        iterator = iter(items)
        try:
            yield iterator
        finally:
            _close(iterator)
        return
    stop = threading.Event()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    worker = threading.Thread(target=_produce, args=(items, slots, stop), name=name, daemon=True)
    worker.start()
    try:
        yield _consume(slots)
    finally:
        stop.set()
        _drain(slots)  # a producer blocked on a full queue sees the stop at its next poll
        worker.join()


def _produce(items: Iterable[Any], slots: queue.Queue[Any], stop: threading.Event) -> None:
    iterator = iter(items)
    try:
        for item in iterator:
            if not _put(slots, item, stop):
                return
        _put(slots, _DONE, stop)
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, who raises it
        _put(slots, _Failed(error), stop)
    finally:
        _close(iterator)  # a generator's own `with` blocks (an open container) end in the thread that ran them


def _consume(slots: queue.Queue[Any]) -> Iterator[Any]:
    while True:
        item = slots.get()
        if item is _DONE:
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


class SerialWorker:
    """Runs the calls handed to `submit` one after another, in order, in a worker thread, with at most `depth`
    waiting. `submit` and `finish` raise the first call's exception (unchanged); after one fails, the calls still
    waiting are dropped. Use it as a context manager: leaving the block without `finish` (the caller failed) drops
    what is waiting and joins the thread."""

    def __init__(self, depth: int, name: str = "worker") -> None:
        self._calls: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> SerialWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        _drain(self._calls)
        self._thread.join()

    def submit(self, call: Callable[..., object], *args: object) -> None:
        """Queue `call(*args)`; blocks while `depth` calls wait."""
        while True:
            self._raise_error()
            if not self._thread.is_alive():  # finished (or never started): nothing would run the call
                raise RuntimeError(f"{self._thread.name} is not running")
            try:
                self._calls.put((call, args), timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every submitted call has run; raise the first failure."""
        self.submit(_DONE)
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                call, args = self._calls.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if call is _DONE:
                return
            try:
                call(*args)
            except BaseException as error:  # noqa: BLE001 - raised by the submitting thread
                self._error = error
                self._stop.set()
                return


def _put(slots: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _drain(slots: queue.Queue[Any]) -> None:
    while True:
        try:
            slots.get_nowait()
        except queue.Empty:
            return


def _close(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
