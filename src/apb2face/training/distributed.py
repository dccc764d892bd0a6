"""Where this process stands in a torchrun job: rank, world size, local rank (one process without torchrun)."""

from __future__ import annotations

import dataclasses
import os

from apb2face.errors import UserError


@dataclasses.dataclass
class Distributed:
    """This process's place in a torchrun job (RANK, WORLD_SIZE, LOCAL_RANK); one process without torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world or self.local_rank < 0:
            raise UserError(
                f"invalid torchrun environment: RANK={self.rank}, WORLD_SIZE={self.world}, "
                f"LOCAL_RANK={self.local_rank}"
            )

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        try:
            return cls(
                rank=int(os.environ.get("RANK", 0)),
                world=int(os.environ.get("WORLD_SIZE", 1)),
                local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            )
        except ValueError:
            raise UserError("invalid torchrun environment: RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
