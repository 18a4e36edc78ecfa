"""PostgreSQL lost mid-traffic, through a proxy the test cuts and restores (the machine's own
server, which other work shares, is never stopped).

While the database is gone, calls answer UNAVAILABLE at once (or, when it silently stops
answering, within the configured database timeout) with a clean ErrorInfo; nothing is half
written; and once it is back the service resumes by itself: the pool reconnects, the run
engine picks up the run it had to drop, and signals between replicas flow again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import grpc
import pytest

from assistants.v1 import (
    assistant_service_pb2,
    message_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants_grpc.config import Settings
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..grpc.rich_errors import RichError, rpc_error
from ..support.postgres import fresh_postgres_database
from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .databases import fetch, postgres_address, through_port
from .helpers import (
    MODEL,
    TERMINAL,
    UPSTREAM_KEY_ENV,
    create_run,
    eventually,
    list_messages_request,
    model_routes,
    names,
    new_assistant,
    new_thread,
    read_to_end,
    read_until,
    subscribe,
    timed,
    wait_for_status,
)
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

DATABASE_TIMEOUT_SECONDS = 1.0
LEASE_SECONDS = 2
# How long the service may take to notice the database is back: the pool connects on the
# next call, the signal listener looks once a second.
RECOVERY_SECONDS = 5.0
MESSAGES_PER_THREAD = 5


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    async with fresh_postgres_database("assistants_outage") as url:
        yield url


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with TcpProxy(*postgres_address()) as tcp_proxy:
        yield tcp_proxy


def _routes(upstream: FakeUpstream) -> str:
    patient = {
        "name": "patient-*",
        "provider": "openai_compatible",
        "base_url": upstream.base_url,
        "api_key_env": UPSTREAM_KEY_ENV,
        "max_retries": 0,
        "timeout_seconds": 300,
    }
    return model_routes(upstream.base_url, patient)


def _settings(database_url: str, upstream: FakeUpstream, **overrides: Any) -> Settings:
    return server_settings(
        database_url,
        models=_routes(upstream),
        database_timeout_seconds=DATABASE_TIMEOUT_SECONDS,
        lease_seconds=LEASE_SECONDS,
        **overrides,
    )


def _leaks(proxy: TcpProxy) -> tuple[str, ...]:
    """What would tell the caller about the database behind the service."""
    return (str(proxy.port), "5432", "postgres", "Errno", "refused", "connection", "timed out")


async def _unavailable(call: Awaitable[Any], proxy: TcpProxy, within: float) -> RichError:
    error, took = await timed(rpc_error(call))
    assert error.code == grpc.StatusCode.UNAVAILABLE, error
    assert error.reason == "STORAGE_UNAVAILABLE", error
    for leak in _leaks(proxy):
        assert leak.lower() not in error.message.lower(), (leak, error)
    assert took < within, (took, error)
    return error


async def _answers(stubs: Stubs, assistant_id: str) -> bool | None:
    try:
        await stubs.assistants.GetAssistant(
            assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
        )
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None
    return True


async def test_calls_answer_unavailable_while_the_database_is_down_and_resume_after(
    database: str, proxy: TcpProxy, upstream: FakeUpstream
) -> None:
    settings = _settings(through_port(database, proxy.port), upstream)
    async with in_process_server(settings) as (_, stubs):
        assistant_id = await new_assistant(stubs)
        thread_id = await new_thread(stubs)
        other_thread = await new_thread(stubs)
        # A run streaming slowly, and a client following it, when the database goes.
        run_id = await create_run(stubs, thread_id, assistant_id, f"{MODEL}@tokens=30,delay_ms=50")
        stream = subscribe(stubs, thread_id, run_id)
        seen = await read_until(stream, "thread.message.delta", timeout=10)

        await proxy.cut()

        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: stubs.assistants.GetAssistant(
                assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
            ),
            lambda: stubs.threads.CreateThread(
                thread_service_pb2.CreateThreadRequest(
                    messages=[message_pb2.MessageInput(role="user", text="lost?")]
                ),
                timeout=5,
            ),
            lambda: stubs.messages.ListMessages(list_messages_request(thread_id), timeout=5),
            lambda: stubs.runs.CreateRun(
                run_service_pb2.CreateRunRequest(thread_id=other_thread, assistant_id=assistant_id),
                timeout=5,
            ),
            lambda: stubs.runs.GetRun(
                run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id), timeout=5
            ),
        ]
        for call in calls:
            await _unavailable(call(), proxy, within=2.0)
        # A new stream fails like any call, and the open one ends the same way instead of
        # waiting for events that cannot be read.
        await _unavailable(read_to_end(subscribe(stubs, thread_id, run_id), 5), proxy, 2.0)
        await _unavailable(read_to_end(stream, 5), proxy, 3.0)

        await proxy.restore()

        await eventually(lambda: _answers(stubs, assistant_id), RECOVERY_SECONDS, "no recovery")
        # The run the engine had to drop mid-stream is picked up again once its lease runs
        # out, and a client resuming where it stopped reads on to the end.
        rest = await read_until(
            subscribe(stubs, thread_id, run_id, after=seen[-1].sequence_number),
            "done",
            timeout=LEASE_SECONDS * 3 + 10,
        )
        assert names(rest)[-2:] == ["thread.run.completed", "done"], names(rest)
        assert rest[0].sequence_number == seen[-1].sequence_number + 1
        # And new work runs as before.
        created = await create_run(stubs, other_thread, assistant_id)
        run = await wait_for_status(stubs, other_thread, created, TERMINAL, timeout=10)
        assert run.status == "completed", run


async def test_a_database_that_stops_answering_fails_calls_within_the_timeout(
    database: str, proxy: TcpProxy, upstream: FakeUpstream
) -> None:
    """A network partition: no reset, no refusal, just silence. Calls, more of them than the
    pool has connections, fail after the database timeout instead of hanging."""
    settings = _settings(through_port(database, proxy.port), upstream)
    async with in_process_server(settings) as (_, stubs):
        assistant_id = await new_assistant(stubs)
        proxy.partition()
        errors = await asyncio.gather(
            *(
                _unavailable(
                    stubs.assistants.GetAssistant(
                        assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id),
                        timeout=10,
                    ),
                    proxy,
                    within=DATABASE_TIMEOUT_SECONDS * 3 + 1,
                )
                for _ in range(30)
            )
        )
        assert len(errors) == 30
        await proxy.restore()
        await eventually(lambda: _answers(stubs, assistant_id), RECOVERY_SECONDS, "no recovery")


async def test_creates_cut_off_by_the_outage_are_all_or_nothing(
    database: str, proxy: TcpProxy, upstream: FakeUpstream
) -> None:
    """Threads with their first messages are created by many callers at once when the
    database goes away. Afterwards each attempt left a whole thread or nothing at all."""
    workers, successes_before_cut = 16, 24
    settings = _settings(through_port(database, proxy.port), upstream)
    succeeded: dict[str, str] = {}
    failed: dict[str, RichError] = {}
    enough = asyncio.Event()

    async def create_until_refused(stubs: Stubs, worker: int) -> None:
        for attempt in range(1000):
            tag = f"{worker}-{attempt}"
            request = thread_service_pb2.CreateThreadRequest(
                messages=[
                    message_pb2.MessageInput(role="user", text=f"{tag} part {part}")
                    for part in range(MESSAGES_PER_THREAD)
                ],
                metadata={"attempt": tag},
            )
            try:
                response = await stubs.threads.CreateThread(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                failed[tag] = RichError.of(error)
                return
            succeeded[tag] = response.thread.id
            if len(succeeded) >= successes_before_cut:
                enough.set()

    async with in_process_server(settings) as (_, stubs):
        creators = [asyncio.create_task(create_until_refused(stubs, w)) for w in range(workers)]
        await asyncio.wait_for(enough.wait(), 20)
        await proxy.cut()
        await asyncio.wait_for(asyncio.gather(*creators), 20)
        await proxy.restore()

    assert len(failed) == workers
    refused = {tag for tag, error in failed.items() if error.code == grpc.StatusCode.UNAVAILABLE}
    # A commit cut off on its way has an unknown outcome, and says so rather than claim
    # UNAVAILABLE, which clients retry as having had no effect.
    unknown = set(failed) - refused
    for tag in unknown:
        error = failed[tag]
        assert (error.code, error.reason) == (grpc.StatusCode.UNKNOWN, "COMMIT_OUTCOME_UNKNOWN")
        error.assert_clean()
    rows = await fetch(
        database,
        "SELECT t.id, convert_from(t.data, 'UTF8')::jsonb -> 'metadata' ->> 'attempt', "
        "(SELECT count(*) FROM messages m WHERE m.thread_id = t.id) "
        "FROM threads t WHERE convert_from(t.data, 'UTF8')::jsonb -> 'metadata' ? 'attempt'",
    )
    stored = {tag: (thread_id, count) for thread_id, tag, count in rows}
    assert len(stored) == len(rows), "an attempt stored two threads"
    assert all(count == MESSAGES_PER_THREAD for _, count in stored.values()), stored
    for tag, thread_id in succeeded.items():
        assert stored[tag][0] == thread_id, tag
    # A refused create left nothing; one cut off while committing left all or nothing.
    assert set(stored) <= set(succeeded) | unknown, set(stored) & refused
    orphans = await fetch(
        database,
        "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM threads t WHERE t.id = m.thread_id)",
    )
    assert orphans[0][0] == 0


async def test_signals_between_replicas_flow_again_after_the_outage(
    database: str, proxy: TcpProxy, upstream: FakeUpstream
) -> None:
    """Replica A reaches the database through the proxy and executes runs; replica B reaches it
    directly and only serves the API. A looks for work only when signalled (its polling is
    made too slow to matter), so B's runs finish only if A hears B's notifications."""
    async with AsyncExitStack() as stack:
        _, executor = await stack.enter_async_context(
            in_process_server(
                _settings(
                    through_port(database, proxy.port),
                    upstream,
                    poll_interval_seconds=60,
                    replica_id="replica-a",
                )
            )
        )
        _, api = await stack.enter_async_context(
            in_process_server(
                _settings(database, upstream, worker_concurrency=0, replica_id="replica-b")
            )
        )
        assistant_id = await new_assistant(api)

        async def run_to_end(model: str = MODEL) -> str:
            thread_id = await new_thread(api)
            run_id = await create_run(api, thread_id, assistant_id, model)
            run = await wait_for_status(api, thread_id, run_id, TERMINAL, timeout=10)
            return run.status

        assert await run_to_end() == "completed"

        await proxy.cut()
        # B serves on; the run it takes now is announced while A cannot hear it.
        thread_id = await new_thread(api)
        missed = await create_run(api, thread_id, assistant_id)
        await _unavailable(
            executor.assistants.GetAssistant(
                assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
            ),
            proxy,
            within=2.0,
        )
        await proxy.restore()

        # A catches up on what it missed when it reconnects...
        run = await wait_for_status(api, thread_id, missed, TERMINAL, timeout=RECOVERY_SECONDS + 5)
        assert run.status == "completed", run
        # ...and hears new work and cancels as before.
        assert await run_to_end() == "completed"
        hanging_thread = await new_thread(api)
        calls_before = upstream.request_count
        hanging = await create_run(api, hanging_thread, assistant_id, "patient-model@hang")
        await upstream.wait_for_requests(calls_before + 1)
        await api.runs.CancelRun(
            run_service_pb2.CancelRunRequest(thread_id=hanging_thread, run_id=hanging), timeout=5
        )
        run = await wait_for_status(api, hanging_thread, hanging, TERMINAL, timeout=5)
        assert run.status == "cancelled", run
        await upstream.wait_for_disconnects(1)
