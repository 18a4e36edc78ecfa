"""Configured limits: the largest request, and the number of run event streams open at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from assistants.v1 import assistant_service_pb2, run_service_pb2, thread_service_pb2
from assistants.v1.message_pb2 import MessageInput
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.composition import Application

from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .clients import error_info, unchanged
from .conftest import HANG_WORD

MESSAGE_LIMIT = 64 * 1024
STREAM_LIMIT = 2


async def test_a_request_over_the_size_limit_is_resource_exhausted(sqlite_url: str) -> None:
    settings = server_settings(sqlite_url, max_message_bytes=MESSAGE_LIMIT)
    async with in_process_server(settings) as (_, stubs):
        fits = assistant_service_pb2.CreateAssistantRequest(
            model="scripted", instructions="x" * (MESSAGE_LIMIT - 1024)
        )
        await stubs.assistants.CreateAssistant(fits)

        too_big = assistant_service_pb2.CreateAssistantRequest(
            model="scripted", instructions="x" * (MESSAGE_LIMIT + 1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stubs.assistants.CreateAssistant(too_big)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        listed = await stubs.assistants.ListAssistants(
            assistant_service_pb2.ListAssistantsRequest()
        )
        assert len(listed.data) == 1


async def _poll_until(condition: Callable[[], bool], within_seconds: float = 5.0) -> None:
    """The server notices a cancelled stream in its own time; nothing signals it."""
    deadline = time.monotonic() + within_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def limited_streams(
    sqlite_url: str, hanging_models: str
) -> AsyncIterator[tuple[Application, Stubs]]:
    settings = server_settings(
        sqlite_url, max_concurrent_streams=STREAM_LIMIT, models=hanging_models
    )
    async with in_process_server(settings) as pair:
        yield pair


async def test_streams_beyond_the_limit_are_resource_exhausted(
    limited_streams: tuple[Application, Stubs],
) -> None:
    app, stubs = limited_streams
    assistant = await stubs.assistants.CreateAssistant(
        assistant_service_pb2.CreateAssistantRequest(model="scripted")
    )
    thread = await stubs.threads.CreateThread(
        thread_service_pb2.CreateThreadRequest(messages=[MessageInput(role="user", text=HANG_WORD)])
    )
    run = await stubs.runs.CreateRun(
        run_service_pb2.CreateRunRequest(
            thread_id=thread.thread.id, assistant_id=assistant.assistant.id
        )
    )
    subscribe = run_service_pb2.SubscribeRunRequest(thread_id=thread.thread.id, run_id=run.run.id)

    open_streams = [stubs.runs.SubscribeRun(subscribe) for _ in range(STREAM_LIMIT)]
    for stream in open_streams:
        # The first event arrives once the stream holds its slot.
        first = await asyncio.wait_for(stream.read(), 5)
        assert isinstance(first, RunStreamEvent)
        assert first.event == "thread.run.created"

    refused = stubs.runs.SubscribeRun(subscribe)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(refused.read(), 5)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(raised.value)
    assert info is not None
    assert info.reason == "TOO_MANY_STREAMS"

    # A closed stream frees its slot for the next one.
    open_streams.pop().cancel()
    await _poll_until(lambda: app.streams.open_streams < STREAM_LIMIT)
    replacement = stubs.runs.SubscribeRun(subscribe)
    first = await asyncio.wait_for(replacement.read(), 5)
    assert isinstance(first, RunStreamEvent)
    assert first.event == "thread.run.created"

    for stream in (*open_streams, replacement):
        stream.cancel()
    await stubs.runs.CancelRun(
        run_service_pb2.CancelRunRequest(thread_id=thread.thread.id, run_id=run.run.id)
    )


def _nested_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def _with_parameters(schema: dict[str, Any]) -> assistant_service_pb2.CreateAssistantRequest:
    request = assistant_service_pb2.CreateAssistantRequest(model="scripted")
    tool = request.tools.add()
    tool.function.name = "lookup"
    tool.function.parameters.update(schema)
    return request


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        # Nested beyond what the protobuf decoder accepts (100 message levels): refused as a
        # request that cannot be decoded, not as an internal error with the parser's text.
        (_nested_schema(60), "request"),
        ({"type": "object", "properties": {f"p{i}": {} for i in range(10_001)}}, "parameters"),
    ],
    ids=["deep", "huge"],
)
async def test_oversized_json_schemas_are_invalid_arguments(
    stubs: Stubs, schema: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stubs.assistants.CreateAssistant(_with_parameters(schema))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")
    info = error_info(raised.value)
    assert info is not None
    assert info.reason == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "payload", [b"\xff\xff\xff", b"\x0a\x02\xc3\x28"], ids=["corrupt", "bad-utf8"]
)
async def test_undecodable_requests_are_invalid_arguments(stubs: Stubs, payload: bytes) -> None:
    unary = stubs.channel.unary_unary(
        "/assistants.v1.AssistantService/CreateAssistant",
        request_serializer=unchanged,
        response_deserializer=unchanged,
    )
    streaming = stubs.channel.unary_stream(
        "/assistants.v1.RunService/SubscribeRun",
        request_serializer=unchanged,
        response_deserializer=unchanged,
    )
    with pytest.raises(grpc.aio.AioRpcError) as unary_error:
        await unary(payload)
    subscription = streaming(payload)
    with pytest.raises(grpc.aio.AioRpcError) as stream_error:
        await subscription.read()
    for raised in (unary_error.value, stream_error.value):
        assert raised.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "DecodeError" not in (raised.details() or "")
        assert error_info(raised) is not None
