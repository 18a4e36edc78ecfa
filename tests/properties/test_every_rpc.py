"""Bad input on every RPC: generated requests, valid and invalid, against a live server.

Every RPC of every service in the generated package (found through their descriptors, so a new
RPC or service is covered without editing this file) gets requests built by `requests.py` and,
separately, random bytes in place of a request. Each answer must be OK or a caller-error code; an
error the server produced must carry its ErrorInfo; the server must still be SERVING afterwards.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assistants.v1
from assistants.v1 import (
    assistant_service_pb2,
    message_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants.v1.message_pb2 import MessageInput
from assistants_grpc.transport.errors import ERROR_DOMAIN

from ..security.clients import error_info, unchanged
from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .requests import call_metadata, requests


def _contract_services() -> list[ServiceDescriptor]:
    """Every service of the generated package, so that a new one is tested without edits."""
    services = []
    for module_info in pkgutil.iter_modules(assistants.v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"assistants.v1.{module_info.name}")
            services.extend(module.DESCRIPTOR.services_by_name.values())
    return sorted(services, key=lambda service: service.full_name)


SERVICES = _contract_services()
METHODS: list[MethodDescriptor] = [method for service in SERVICES for method in service.methods]
CALLER_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
}
CALL_TIMEOUT_SECONDS = 15.0
# Tuned so that the whole file stays within about 30 seconds on a two-core machine;
# derandomized so that CI runs the same examples every time.
EXAMPLES_PER_RPC = 25
RAW_EXAMPLES_PER_RPC = 8
SETTINGS = settings(
    max_examples=EXAMPLES_PER_RPC,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _seed(stubs: Stubs) -> tuple[str, ...]:
    assistant = (
        await stubs.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(model="scripted")
        )
    ).assistant
    thread = (
        await stubs.threads.CreateThread(
            thread_service_pb2.CreateThreadRequest(
                messages=[MessageInput(role="user", text="Hello there")]
            )
        )
    ).thread
    run = (
        await stubs.runs.RunThread(
            run_service_pb2.RunThreadRequest(thread_id=thread.id, assistant_id=assistant.id),
            timeout=CALL_TIMEOUT_SECONDS,
        )
    ).run
    assert run.status == "completed"
    messages = await stubs.messages.ListMessages(
        message_service_pb2.ListMessagesRequest(thread_id=thread.id)
    )
    steps = await stubs.runs.ListRunSteps(
        run_service_pb2.ListRunStepsRequest(thread_id=thread.id, run_id=run.id)
    )
    return (
        assistant.id,
        thread.id,
        run.id,
        *(m.id for m in messages.data),
        *(s.id for s in steps.data),
    )


@pytest.fixture(scope="module")
async def server_stubs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stubs]:
    folder = tmp_path_factory.mktemp("properties")
    settings = server_settings(f"sqlite:///{Path(folder) / 'assistants.db'}")
    async with in_process_server(settings) as (_, module_stubs):
        yield module_stubs


@pytest.fixture
async def known_ids(server_stubs: Stubs) -> tuple[str, ...]:
    """Ids of real objects of every kind, fresh for each RPC (the examples of DeleteThread
    would otherwise leave nothing for the RPCs after it), so that requests reach past the
    lookups. Their run has ended: a stream that follows a run waiting for tool outputs rightly
    stays open, which would show up here as nothing but a deadline."""
    return await _seed(server_stubs)


async def _answer(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    payload: bytes,
    metadata: Sequence[tuple[str, str]] = (),
) -> grpc.aio.AioRpcError | None:
    """Sends `payload` as the request of `method`; returns the call's error, or None when it
    succeeded (for a stream: ran to its end). Answers are not parsed: only their status
    matters here."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path, request_serializer=unchanged, response_deserializer=unchanged
            )
            async for _ in stream(payload, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata):
                pass
        else:
            unary = channel.unary_unary(
                path, request_serializer=unchanged, response_deserializer=unchanged
            )
            await unary(payload, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return error
    return None


def _check(error: grpc.aio.AioRpcError | None) -> None:
    if error is None:
        return
    code = error.code()
    assert code in CALLER_ERRORS, (code, error.details())
    if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        # RESOURCE_EXHAUSTED may come from gRPC itself (an oversized message or metadata);
        # every other refusal is ours and must say why in a machine-readable way.
        info = error_info(error)
        assert info is not None, (code, error.details())
        assert info.domain == ERROR_DOMAIN


async def _assert_serving(stubs: Stubs) -> None:
    health = await stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@SETTINGS
@given(data=st.data())
async def test_generated_requests_get_ok_or_a_caller_error(
    server_stubs: Stubs, known_ids: tuple[str, ...], method: MethodDescriptor, data: st.DataObject
) -> None:
    request: Message = data.draw(requests(method.input_type, known_ids), label="request")
    metadata = data.draw(call_metadata(), label="metadata")
    _check(await _answer(server_stubs.channel, method, request.SerializeToString(), metadata))
    await _assert_serving(server_stubs)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@settings(SETTINGS, max_examples=RAW_EXAMPLES_PER_RPC)
@given(payload=st.binary(max_size=200))
async def test_random_bytes_get_ok_or_a_caller_error(
    server_stubs: Stubs, method: MethodDescriptor, payload: bytes
) -> None:
    _check(await _answer(server_stubs.channel, method, payload))
    await _assert_serving(server_stubs)


@pytest.mark.parametrize(
    "method",
    [
        next(m for m in METHODS if not m.server_streaming),
        next(m for m in METHODS if m.server_streaming),
    ],
    ids=lambda m: m.name,
)
async def test_metadata_over_the_grpc_limit_is_resource_exhausted(
    server_stubs: Stubs, method: MethodDescriptor
) -> None:
    oversized = [("x-request-id", "r" * 20_000)]
    error = await _answer(server_stubs.channel, method, b"", oversized)
    assert error is not None
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await _assert_serving(server_stubs)


def test_the_contracts_services_are_all_found() -> None:
    found = {service.name for service in SERVICES}
    assert {"AssistantService", "ThreadService", "MessageService", "RunService"} <= found
    assert len({m.full_name for m in METHODS}) == len(METHODS) >= 28
