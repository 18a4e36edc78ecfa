"""Several `assistants-grpc serve` processes sharing one PostgreSQL database, the fake model
upstream they call, and the reads a test needs to check what happened across them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import grpc

from assistants.v1 import (
    assistant_service_pb2,
    message_service_pb2,
    run_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..support.servers import ServerProcess
from ..support.stubs import Stubs

# Model names the fake upstream serves; a `@SPEC` suffix picks its behaviour per run.
MODEL = "fake-model"
API_KEY_ENV = "ASSISTANTS_TEST_FAKE_UPSTREAM_KEY"
LEASE_SECONDS = 2
POLL_INTERVAL_SECONDS = 0.2
# Long enough for a replica to start on a loaded 2-core machine, short enough to fail fast.
START_TIMEOUT_SECONDS = 30.0

T = TypeVar("T")

RUN_ENDINGS = frozenset(
    f"thread.run.{status}"
    for status in ("completed", "failed", "cancelled", "expired", "incomplete")
)


def model_routes(upstream: FakeUpstream) -> str:
    return json.dumps(
        [
            {
                "name": f"{MODEL}*",
                "provider": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key_env": API_KEY_ENV,
                # A failure must show as a failure, not as a second call the test did not expect.
                "max_retries": 0,
            }
        ]
    )


class Cluster:
    """Replicas `0..n-1`, each a separate process, with the stubs of each and a connection to
    the shared database for checks the API does not expose (which replica holds a run)."""

    def __init__(self, database_url: str, upstream: FakeUpstream, size: int) -> None:
        self.database_url = database_url
        self.upstream = upstream
        self.size = size
        self.replicas: list[ServerProcess] = []
        self.stubs: list[Stubs] = []
        self.replica_ids: list[str] = []
        self._generation = 0
        self._db: asyncpg.Connection | None = None

    def _process(self, replica_id: str) -> ServerProcess:
        return ServerProcess(
            [
                "--database-url",
                self.database_url,
                "--models",
                model_routes(self.upstream),
                "--replica-id",
                replica_id,
                "--lease-seconds",
                str(LEASE_SECONDS),
                "--poll-interval-seconds",
                str(POLL_INTERVAL_SECONDS),
                "--grace-period-seconds",
                "1",
                "--log-level",
                "WARNING",
                "--no-log-json",
            ],
            env={API_KEY_ENV: "fake-key"},
        )

    async def start(self) -> None:
        self._db = await asyncpg.connect(self.database_url, timeout=5)
        self.replica_ids = [f"replica-{index}" for index in range(self.size)]
        self.replicas = [self._process(replica_id) for replica_id in self.replica_ids]
        # The first one migrates the empty database; the others then start side by side.
        await self.replicas[0].start(START_TIMEOUT_SECONDS)
        await asyncio.gather(*(r.start(START_TIMEOUT_SECONDS) for r in self.replicas[1:]))
        self.stubs = [Stubs.connect(replica.target) for replica in self.replicas]

    async def restart(self, index: int) -> None:
        """Replaces replica `index` (killed or not) with a fresh process under a new id."""
        await asyncio.to_thread(self.replicas[index].kill)
        await self.stubs[index].close()
        self._generation += 1
        self.replica_ids[index] = f"replica-{index}-{self._generation}"
        self.replicas[index] = self._process(self.replica_ids[index])
        await self.replicas[index].start(START_TIMEOUT_SECONDS)
        self.stubs[index] = Stubs.connect(self.replicas[index].target)

    def kill(self, index: int) -> None:
        """kill -9: the replica stops mid-work, renews nothing and releases nothing."""
        self.replicas[index].kill()

    async def stop(self) -> None:
        for stubs in self.stubs:
            await stubs.close()
        await asyncio.gather(*(asyncio.to_thread(replica.stop) for replica in self.replicas))
        if self._db is not None:
            await self._db.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {replica_id}\n{''.join(replica.output)}"
            for replica_id, replica in zip(self.replica_ids, self.replicas, strict=True)
        )

    # --- reading the shared database ----------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        assert self._db is not None
        rows: list[asyncpg.Record] = await self._db.fetch(sql, *args)
        return rows

    async def owner_of(self, run_id: str, timeout: float = 10.0) -> int:
        """The index of the replica whose worker holds the run's lease, once one does."""

        async def holder() -> int | None:
            rows = await self.fetch("SELECT lease_owner FROM runs WHERE id = $1", run_id)
            owner = rows[0]["lease_owner"] if rows else None
            return self.replica_ids.index(owner) if owner in self.replica_ids else None

        return await eventually(holder, timeout, f"no replica claimed {run_id}")

    # --- the API ------------------------------------------------------------------------------

    async def new_conversation(self, replica: int, model: str = MODEL) -> tuple[str, str]:
        """An assistant and a thread holding one user message; (assistant_id, thread_id)."""
        stubs = self.stubs[replica]
        assistant = await stubs.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(model=model, name="replicas")
        )
        thread = await stubs.threads.CreateThread(thread_service_pb2.CreateThreadRequest())
        await stubs.messages.CreateMessage(
            message_service_pb2.CreateMessageRequest(
                thread_id=thread.thread.id, role="user", text="Hello there."
            )
        )
        return assistant.assistant.id, thread.thread.id

    async def get_run(self, replica: int, thread_id: str, run_id: str) -> run_pb2.Run:
        response = await self.stubs[replica].runs.GetRun(
            run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id), timeout=5
        )
        return response.run

    def subscribe(
        self, replica: int, thread_id: str, run_id: str, after: int = 0
    ) -> grpc.aio.UnaryStreamCall[run_service_pb2.SubscribeRunRequest, RunStreamEvent]:
        call: grpc.aio.UnaryStreamCall[run_service_pb2.SubscribeRunRequest, RunStreamEvent] = (
            self.stubs[replica].runs.SubscribeRun(
                run_service_pb2.SubscribeRunRequest(
                    thread_id=thread_id, run_id=run_id, after_sequence_number=after
                )
            )
        )
        return call

    async def read_log(
        self, replica: int, thread_id: str, run_id: str, timeout: float = 10.0
    ) -> list[RunStreamEvent]:
        """The run's whole event log, up to the `done` after its end. A stream stops at every
        `done`, and a run that waited for tool outputs has one before its end too."""
        log: list[RunStreamEvent] = []
        while not log or log[-2].event not in RUN_ENDINGS:
            after = log[-1].sequence_number if log else 0
            log += await read_until(
                self.subscribe(replica, thread_id, run_id, after), "done", timeout
            )
        return log

    def others(self, *excluded: int) -> list[int]:
        return [index for index in range(self.size) if index not in excluded]


async def read_until(
    call: grpc.aio.UnaryStreamCall[Any, RunStreamEvent],
    event_name: str,
    timeout: float,
) -> list[RunStreamEvent]:
    """Reads a run stream up to and including the first event named `event_name`."""
    events: list[RunStreamEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                raise AssertionError(
                    f"the stream ended before {event_name!r}: {[e.event for e in events]}"
                )
            assert isinstance(event, RunStreamEvent)
            events.append(event)
            if event.event == event_name:
                return events


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float, failure: str, interval: float = 0.05
) -> T:
    """Polls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} within {timeout} s")
        await asyncio.sleep(interval)


def names(events: Sequence[RunStreamEvent]) -> list[str]:
    return [event.event for event in events]


def assert_contiguous(events: Sequence[RunStreamEvent], first: int = 1) -> None:
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(first, first + len(events))), numbers


def model_calls(upstream: FakeUpstream, model: str) -> int:
    """How many chat requests named `model` the fake upstream received."""
    return sum(1 for request in upstream.requests if request.body.get("model") == model)
