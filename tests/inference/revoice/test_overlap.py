"""Stages in threads of their own: order kept, the original exception passed on, every thread joined on the way
out (whether the work finished, failed, or was abandoned)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from apb2face.inference.revoice.overlap import SerialWorker, prefetch


class Boom(Exception):
    pass


def our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("items", "calls")]


def counting(
    n: int, closed: list[bool], fail_at: int | None = None, error: BaseException | None = None
) -> Iterator[int]:
    try:
        for k in range(n):
            if k == fail_at:
                raise error
            yield k
    finally:
        closed.append(True)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_keeps_order_and_closes_its_source(depth: int) -> None:
    closed: list[bool] = []
    with prefetch(counting(50, closed), depth, "items") as items:
        assert list(items) == list(range(50))
    assert closed == [True] and not our_threads()


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_raises_the_sources_own_exception_after_its_items(depth: int) -> None:
    error = Boom("decoder failed")
    got = []
    with pytest.raises(Boom) as raised, prefetch(counting(10, [], 4, error), depth, "items") as items:
        got.extend(items)
    assert raised.value is error and got == [0, 1, 2, 3]
    assert not our_threads()


def test_prefetch_left_early_stops_the_worker_and_closes_the_source() -> None:
    closed: list[bool] = []
    with pytest.raises(Boom), prefetch(counting(10**6, closed), 2, "items") as items:
        next(items)
        raise Boom("the consumer failed")
    assert closed == [True] and not our_threads()


def test_serial_worker_runs_calls_in_order() -> None:
    seen: list[int] = []
    with SerialWorker(2, "calls") as worker:
        for k in range(100):
            worker.submit(seen.append, k)
        worker.finish()
    assert seen == list(range(100)) and not our_threads()


def test_serial_worker_raises_the_calls_own_exception_and_drops_the_rest() -> None:
    error = Boom("encoder failed")
    seen: list[int] = []

    def call(k: int) -> None:
        if k == 3:
            raise error
        seen.append(k)

    with pytest.raises(Boom) as raised, SerialWorker(4, "calls") as worker:
        for k in range(1000):
            worker.submit(call, k)
        worker.finish()
    assert raised.value is error and seen == [0, 1, 2]
    assert not our_threads()


def test_serial_worker_left_without_finish_drops_what_waits() -> None:
    seen: list[int] = []

    def slow(k: int) -> None:
        time.sleep(0.01)
        seen.append(k)

    with pytest.raises(Boom), SerialWorker(8, "calls") as worker:
        for k in range(8):
            worker.submit(slow, k)
        raise Boom("the model failed")
    assert len(seen) < 8 and not our_threads()
    with pytest.raises(RuntimeError, match="not running"):
        worker.submit(seen.append, 99)
