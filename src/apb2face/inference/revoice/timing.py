"""Wall time per stage of a re-voice (decode, track, generate, blend, encode), for its report."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

STAGES = ("decode", "track", "generate", "blend", "encode")


class StageTimer:
    """Wall time per stage, accumulated (perf_counter)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
