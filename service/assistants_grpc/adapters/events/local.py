"""The in-process event hub: enough for one replica (SQLite, or one PostgreSQL replica)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from assistants_grpc.domain.models import RunEvent

# Events one subscriber may have waiting before it is told to catch up from storage instead.
SUBSCRIBER_BUFFER = 1024


class LocalSubscription:
    def __init__(self, hub: LocalEventHub, run_id: str) -> None:
        self._hub = hub
        self._run_id = run_id
        self._buffer: deque[RunEvent] = deque()
        self._overflowed = False
        self._wakeup = asyncio.Event()

    def deliver(self, events: list[RunEvent]) -> None:
        if len(self._buffer) + len(events) > SUBSCRIBER_BUFFER:
            self._buffer.clear()
            self._overflowed = True
        else:
            self._buffer.extend(events)
        self._wakeup.set()

    def poke(self) -> None:
        """Events exist that were not delivered here (another replica wrote them)."""
        self._overflowed = True
        self._wakeup.set()

    async def next_batch(self, timeout: float) -> list[RunEvent] | None:
        if not self._buffer and not self._overflowed:
            self._wakeup.clear()
            try:
                # asyncio.timeout rather than wait_for: it arms a timer on this task instead of
                # wrapping the wait in a new task, and this runs once per event batch per stream.
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                return []
        if self._overflowed:
            self._overflowed = False
            self._buffer.clear()
            return None
        batch = list(self._buffer)
        self._buffer.clear()
        return batch

    def close(self) -> None:
        self._hub._unsubscribe(self._run_id, self)


class LocalEventHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[LocalSubscription]] = {}
        self._work = asyncio.Event()
        self._cancel_handlers: list[Callable[[str], None]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        for subscriber in self._subscribers.get(run_id, ()):
            subscriber.deliver(events)

    def poke_run(self, run_id: str) -> None:
        for subscriber in self._subscribers.get(run_id, ()):
            subscriber.poke()

    def interrupt_all(self) -> None:
        """Wakes every subscriber (the server is draining and they should look up)."""
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.poke()

    def subscribe(self, run_id: str) -> LocalSubscription:
        subscription = LocalSubscription(self, run_id)
        self._subscribers.setdefault(run_id, set()).add(subscription)
        return subscription

    def _unsubscribe(self, run_id: str, subscription: LocalSubscription) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[run_id]

    def announce_work(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._work.wait()
        except TimeoutError:
            return
        finally:
            self._work.clear()

    def request_cancel(self, run_id: str) -> None:
        self.deliver_cancel(run_id)

    def deliver_cancel(self, run_id: str) -> None:
        for handler in self._cancel_handlers:
            handler(run_id)

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        self._cancel_handlers.append(handler)
