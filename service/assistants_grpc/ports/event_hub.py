"""The port that carries signals between the parts of one replica and across replicas.

Events themselves live in storage (the run's event log is the source of truth); the hub only
delivers committed events to local subscribers without a database read, and tells everyone
else when to look: new events for a run, a run to cancel, work to claim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from assistants_grpc.domain.models import RunEvent


class RunSubscription(Protocol):
    """Committed events of one run, as they are published.

    Buffers a bounded number of events; a subscriber that falls behind loses the buffer and
    is told to catch up from storage, so a slow reader never holds back the run or others.
    """

    async def next_batch(self, timeout: float) -> list[RunEvent] | None:
        """The next published events; an empty list when the timeout passed; None when the
        buffer overflowed or another replica announced events (read storage to catch up)."""
        ...

    def close(self) -> None: ...


class EventHub(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        """Announces events that were just committed."""
        ...

    def subscribe(self, run_id: str) -> RunSubscription: ...

    def interrupt_all(self) -> None:
        """Wakes every local subscriber so that it notices the server is draining."""
        ...

    def announce_work(self) -> None:
        """A run became claimable (created, or queued again after tool outputs)."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Returns when work was announced, or after `timeout` seconds."""
        ...

    def request_cancel(self, run_id: str) -> None:
        """A caller asked to cancel the run; its executor, wherever it is, should stop."""
        ...

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        """Registers the local executor's handler for cancel requests."""
        ...
