"""What every use case knows about its caller."""

from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_PROJECT = "default"


@dataclass(frozen=True, slots=True)
class CallContext:
    """The caller's project (every object read or written belongs to it) and deadline."""

    project_id: str = DEFAULT_PROJECT
    deadline: float | None = None
    """When the caller stops waiting, on the `time.monotonic()` clock; None for no deadline."""

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


def now() -> int:
    """The current time in Unix seconds, as every timestamp of the API is."""
    return int(time.time())
