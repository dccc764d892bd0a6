"""When a training run stops early: a wall-clock budget (`--max-minutes`) and Ctrl-C / SIGTERM.

Both are only ever acted on between steps, after an update is complete, so the checkpoint written on the way out
holds a consistent state and `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Budget:
    """A wall-clock budget for the training loop (set-up and data loading before the loop are not counted).

    fit_schedule: after every step the steps left are estimated from the mean step time so far (the first step,
    which carries one-off warm-up costs, left out), and the schedule's length is set to the steps done plus those
    left, so the learning rate reaches its end when the time is up even on a machine whose load changes.
    fit_until_step: stop re-fitting once the run reaches this global step (counted after `timed_from`): from then on
    the schedule is fixed, so a run stopped later and resumed with that length ends exactly as an uninterrupted one.
    timed_from: steps up to this global step cost what later ones do not (the discriminator's warm-up skips the
    generator's update), so they are left out of the step time, and the fit starts after them.
    """

    seconds: float
    fit_schedule: bool = False
    fit_until_step: int | None = None
    timed_from: int = 0
    started: float = field(default=0.0, init=False)
    after_first: float | None = field(default=None, init=False)
    steps_done: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {self.seconds}")

    def start(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spent(self) -> bool:
        return self.elapsed >= self.seconds

    def after_step(self, step: int) -> int | None:
        """Count one finished step (the run is now at global `step`); with fit_schedule, the schedule length that
        ends when the time does (None before there is a step time to go by, or without fit_schedule)."""
        if step <= self.timed_from:
            return None
        self.steps_done += 1
        now = time.perf_counter()
        if self.steps_done == 1:
            self.after_first = now
            return None
        if not self.fit_schedule or self.after_first is None:
            return None
        if self.fit_until_step is not None and step > self.fit_until_step + self.timed_from:
            return None
        per_step = (now - self.after_first) / (self.steps_done - 1)
        left = max(1, int((self.seconds - (now - self.started)) / per_step))
        return step + left


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM ask the loop to stop after the step in progress; a second one stops at once.

    Installed only in the main thread of the main interpreter (where Python delivers signals)."""

    def __init__(self) -> None:
        self.received: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second request: stop now (atomic writes keep the last checkpoint intact)
        self.received = signum
        log.warning(
            "%s: stopping after this step and saving a checkpoint (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""


def ignore_sigint_in_worker(worker_id: int) -> None:
    """DataLoader workers share the terminal's process group, so Ctrl-C reaches them too; the main process decides
    when to stop and shuts them down, so they ignore it (a worker killed by it would fail the next batch)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
