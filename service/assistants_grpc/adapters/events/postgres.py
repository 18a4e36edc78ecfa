"""The event hub for several replicas sharing PostgreSQL: LISTEN/NOTIFY carries the signals.

PostgreSQL is already what the replicas share, and its notifications reach every listening
session within milliseconds of a commit; a second broker would add a moving part without
adding a guarantee (events themselves are read from the run's log, never from the
notification). Local delivery stays in memory as with one replica; what crosses replicas is
only "run X has new events", "cancel run X" and "there is work to claim".

Notifications are coalesced: a run announced several times within one flush interval costs
one NOTIFY, so a streaming run does not turn into a database round trip per delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import asyncpg

from assistants_grpc.adapters.events.local import LocalEventHub
from assistants_grpc.domain.models import RunEvent

log = logging.getLogger(__name__)

CHANNEL = "assistants_run_signals"
FLUSH_INTERVAL_SECONDS = 0.01
RECONNECT_DELAY_SECONDS = 1.0
# Bounds connecting and each statement, so that a database cut off by the network delays
# signals (subscribers poll storage anyway) instead of stalling the flush loop or shutdown.
DEFAULT_TIMEOUT_SECONDS = 5.0
# NOTIFY payloads are limited to 8000 bytes; run ids are short, but a burst is split anyway.
MAX_SIGNALS_PER_NOTIFY = 100


class PostgresEventHub(LocalEventHub):
    def __init__(self, url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__()
        self._url = url
        self._timeout = timeout_seconds
        self._origin = uuid.uuid4().hex[:12]
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._pending: set[str] = set()
        self._flush_needed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # The flush loop and the watcher may both find the connection broken; one reconnects.
        self._reconnecting = asyncio.Lock()

    async def start(self) -> None:
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="notify-flush"),
            asyncio.create_task(self._watch_listener(), name="notify-listener"),
        ]

    async def _connect(self) -> None:
        self._listener = await self._open()
        await self._listener.add_listener(CHANNEL, self._on_notification)
        self._sender = await self._open()

    async def _open(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._url, timeout=self._timeout, command_timeout=self._timeout
        )

    async def close(self) -> None:
        self._closing = True
        await self._flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in (self._listener, self._sender):
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=self._timeout)
        await super().close()

    # --- outgoing ---------------------------------------------------------------------------

    def _signal(self, signal: str) -> None:
        self._pending.add(signal)
        self._flush_needed.set()

    def publish(self, run_id: str, events: list[RunEvent]) -> None:
        super().publish(run_id, events)
        self._signal(f"e:{run_id}")

    def announce_work(self) -> None:
        super().announce_work()
        self._signal("w")

    def request_cancel(self, run_id: str) -> None:
        super().request_cancel(run_id)
        self._signal(f"c:{run_id}")

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_needed.wait()
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            self._flush_needed.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending or self._sender is None:
            return
        signals = sorted(self._pending)
        self._pending.clear()
        payloads = [
            f"{self._origin} " + " ".join(signals[i : i + MAX_SIGNALS_PER_NOTIFY])
            for i in range(0, len(signals), MAX_SIGNALS_PER_NOTIFY)
        ]
        try:
            await self._sender.execute(
                "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                CHANNEL,
                payloads,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Subscribers poll storage regularly, so a lost signal only delays them.
            log.warning("could not send run signals; reconnecting", exc_info=True)
            await self._reconnect()

    # --- incoming ---------------------------------------------------------------------------

    def _on_notification(self, connection: object, pid: int, channel: str, payload: str) -> None:
        origin, _, body = payload.partition(" ")
        if origin == self._origin:
            return
        for signal in body.split():
            if signal == "w":
                super().announce_work()
            elif signal.startswith("e:"):
                self.poke_run(signal[2:])
            elif signal.startswith("c:"):
                self.deliver_cancel(signal[2:])

    async def _watch_listener(self) -> None:
        """Reconnects when the listening session is lost (database restart, network)."""
        while True:
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            # Either session may be the one lost (or never reopened after a half-failed
            # reconnect): without the sender, signals would pile up unsent.
            if any(c is None or c.is_closed() for c in (self._listener, self._sender)):
                await self._reconnect()

    async def _reconnect(self) -> None:
        if self._closing or self._reconnecting.locked():
            return
        async with self._reconnecting:
            await self._replace_connections()

    async def _replace_connections(self) -> None:
        for connection in (self._listener, self._sender):
            if connection is not None and not connection.is_closed():
                # A connection being replaced is broken or unanswered: a polite close would
                # wait on it, so it is dropped.
                connection.terminate()
        self._listener = self._sender = None
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("cannot reach PostgreSQL for run signals; will retry")
            return
        # Whatever was announced while disconnected is found by looking again.
        self.interrupt_all()
        super().announce_work()
