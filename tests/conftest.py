"""Test gating: `slow` tests run only with RUN_SLOW=1; `real` tests need ../shared/data/real and skip without it.
And fixtures that tests in several folders use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("RUN_SLOW") == "1"
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow test: set RUN_SLOW=1"))
        if "real" in item.keywords and not SHARED_REAL.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"real clips not found at {SHARED_REAL}"))


@pytest.fixture
def real_dir() -> Path:
    return SHARED_REAL


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module's tiny models (a second gains nothing, and OpenMP barriers crawl on a shared,
    busy 2-core machine), the previous count restored after: a global thread count left behind changes the float
    results of later tests that compare an in-process run with a subprocess (exact resume)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
