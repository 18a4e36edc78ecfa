"""Deadlines: RunThread answers within the caller's deadline even when the model hangs, and
the model call is told how long the caller still waits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable

import grpc
import pytest

from assistants.v1 import assistant_service_pb2, run_service_pb2, thread_service_pb2
from assistants.v1.message_pb2 import MessageInput
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.adapters.providers.scripted import ScriptedProvider
from assistants_grpc.composition import Application

from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .conftest import HANG_WORD

DEADLINE_SECONDS = 0.6
# How late an answer may be on a loaded two-core machine and still count as on time.
LATENESS_SECONDS = 0.5


@pytest.fixture
async def hanging(sqlite_url: str, hanging_models: str) -> AsyncIterator[tuple[Application, Stubs]]:
    async with in_process_server(server_settings(sqlite_url, models=hanging_models)) as pair:
        yield pair


async def _hanging_thread(stubs: Stubs) -> tuple[str, str]:
    assistant = await stubs.assistants.CreateAssistant(
        assistant_service_pb2.CreateAssistantRequest(model="scripted")
    )
    thread = await stubs.threads.CreateThread(
        thread_service_pb2.CreateThreadRequest(messages=[MessageInput(role="user", text=HANG_WORD)])
    )
    return assistant.assistant.id, thread.thread.id


async def _settle(
    call: Awaitable[run_service_pb2.RunThreadResponse],
) -> tuple[run_service_pb2.RunThreadResponse | None, grpc.aio.AioRpcError | None]:
    try:
        return await call, None
    except grpc.aio.AioRpcError as error:
        return None, error


async def _collect(stream: AsyncIterable[RunStreamEvent], events: list[str]) -> None:
    async for event in stream:
        events.append(event.event)


async def test_run_thread_answers_within_the_deadline(hanging: tuple[Application, Stubs]) -> None:
    _, stubs = hanging
    assistant_id, thread_id = await _hanging_thread(stubs)

    started = time.monotonic()
    call = stubs.runs.RunThread(
        run_service_pb2.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id),
        timeout=DEADLINE_SECONDS,
    )
    answer, error = await _settle(call)
    elapsed = time.monotonic() - started

    assert elapsed <= DEADLINE_SECONDS + LATENESS_SECONDS
    if error is not None:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        # The run goes on after the answer: the caller gets it as it is.
        assert answer is not None
        assert answer.run.status in ("queued", "in_progress")

    runs = await stubs.runs.ListRuns(run_service_pb2.ListRunsRequest(thread_id=thread_id))
    await stubs.runs.CancelRun(
        run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=runs.data[0].id)
    )


async def test_a_stream_ends_at_the_deadline(hanging: tuple[Application, Stubs]) -> None:
    _, stubs = hanging
    assistant_id, thread_id = await _hanging_thread(stubs)

    started = time.monotonic()
    events: list[str] = []
    stream = stubs.runs.RunThreadStream(
        run_service_pb2.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id),
        timeout=DEADLINE_SECONDS,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _collect(stream, events)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started <= DEADLINE_SECONDS + LATENESS_SECONDS
    assert events[0] == "thread.run.created"

    runs = await stubs.runs.ListRuns(run_service_pb2.ListRunsRequest(thread_id=thread_id))
    await stubs.runs.CancelRun(
        run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=runs.data[0].id)
    )


async def test_the_model_call_gets_the_callers_remaining_deadline(
    hanging: tuple[Application, Stubs],
) -> None:
    app, stubs = hanging
    assistant_id, thread_id = await _hanging_thread(stubs)
    route = app.router.resolve("scripted")
    assert route is not None
    provider = route[0]
    assert isinstance(provider, ScriptedProvider)

    answer = await stubs.runs.RunThread(
        run_service_pb2.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id),
        timeout=DEADLINE_SECONDS,
    )
    await stubs.runs.CancelRun(
        run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=answer.run.id)
    )

    assert provider.requests, "the model was never called"
    timeout = provider.requests[-1].timeout_seconds
    assert timeout is not None
    # gRPC rounds the timeout it sends up (to keep the header short), so the server may see a
    # few milliseconds more than the client asked for.
    assert 0 < timeout <= DEADLINE_SECONDS + 0.05
