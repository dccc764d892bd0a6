"""The torchrun environment is checked: a bad RANK / WORLD_SIZE is one user error, not a hang or a traceback."""

from __future__ import annotations

import pytest

from apb2face.errors import UserError
from apb2face.training.distributed import Distributed


def test_single_process_without_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    single = Distributed.from_env()
    assert single.main and not single.enabled


@pytest.mark.parametrize("env", [{"RANK": "2", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "0"}, {"RANK": "one"}])
def test_invalid_torchrun_environment_is_user_error(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match="torchrun environment"):
        Distributed.from_env()
