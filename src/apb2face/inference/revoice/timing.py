"""Wall time per stage of a re-voice (decode, track, generate, blend, encode), for its report."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

STAGES = ("decode", "track", "generate", "blend", "encode")


class StageTimer:
    """Wall time per stage, accumulated (perf_counter). Stages may run in their own threads (`overlap`): each
    stage's time is then the time it was busy, and the stages' sum exceeds the wall time of the whole."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()  # `+=` on a dict entry is not atomic between threads

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed
