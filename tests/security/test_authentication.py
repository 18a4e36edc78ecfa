"""Calls and API keys over gRPC: open while no key exists, then UNAUTHENTICATED without a valid
key (with ErrorInfo), while health and reflection stay open."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from assistants.v1 import assistant_service_pb2, run_service_pb2
from assistants_grpc.composition import Application
from assistants_grpc.transport.errors import ERROR_DOMAIN

from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .clients import connect, error_info


async def _refusal_reason(stubs: Stubs) -> str:
    """Calls a unary and a streaming RPC; both must be refused the same way."""
    reasons = []
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stubs.assistants.ListAssistants(assistant_service_pb2.ListAssistantsRequest())
    subscription = stubs.runs.SubscribeRun(
        run_service_pb2.SubscribeRunRequest(thread_id="thread_x", run_id="run_x")
    )
    with pytest.raises(grpc.aio.AioRpcError) as streaming:
        await subscription.read()
    for raised in (unary.value, streaming.value):
        assert raised.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info(raised)
        assert info is not None
        assert info.domain == ERROR_DOMAIN
        reasons.append(str(info.reason))
    assert reasons[0] == reasons[1]
    return reasons[0]


async def test_without_keys_the_service_is_open_in_the_default_project(
    app: Application, target: str
) -> None:
    anonymous = connect(target)
    try:
        created = await anonymous.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(model="scripted")
        )
        default_key = await app.api_keys.create("default", "adopts the open data")
        default_project = connect(target, key=default_key.secret)
        try:
            listed = await default_project.assistants.ListAssistants(
                assistant_service_pb2.ListAssistantsRequest()
            )
        finally:
            await default_project.close()
        assert [a.id for a in listed.data] == [created.assistant.id]
        assert await _refusal_reason(anonymous) == "API_KEY_MISSING"
    finally:
        await anonymous.close()


async def test_once_a_key_exists_every_call_needs_a_valid_one(
    app: Application, target: str
) -> None:
    created = await app.api_keys.create("acme")
    revoked = await app.api_keys.create("acme")
    await app.api_keys.revoke(revoked.record.id)
    cases = {
        None: "API_KEY_MISSING",
        "sk-asst-not-a-key": "API_KEY_INVALID",
        created.secret + "x": "API_KEY_INVALID",
        revoked.secret: "API_KEY_REVOKED",
    }
    for key, reason in cases.items():
        stubs = connect(target, key=key)
        try:
            assert await _refusal_reason(stubs) == reason, key
        finally:
            await stubs.close()

    valid = connect(target, key=created.secret)
    try:
        await valid.assistants.ListAssistants(assistant_service_pb2.ListAssistantsRequest())
    finally:
        await valid.close()


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "sk-asst-abc", "Bearer a b"]
)
async def test_an_authorization_that_is_not_bearer_is_refused(
    app: Application, target: str, authorization: str
) -> None:
    await app.api_keys.create("acme")
    stubs = connect(target)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stubs.assistants.ListAssistants(
                assistant_service_pb2.ListAssistantsRequest(),
                metadata=(("authorization", authorization),),
            )
    finally:
        await stubs.close()
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(raised.value)
    assert info is not None
    assert info.reason == "AUTHORIZATION_MALFORMED"


async def test_the_bearer_scheme_is_case_insensitive(app: Application, target: str) -> None:
    created = await app.api_keys.create("acme")
    stubs = connect(target)
    try:
        await stubs.assistants.ListAssistants(
            assistant_service_pb2.ListAssistantsRequest(),
            metadata=(("authorization", f"bearer {created.secret}"),),
        )
    finally:
        await stubs.close()


async def test_health_and_reflection_need_no_key(app: Application, target: str) -> None:
    await app.api_keys.create("acme")
    stubs = connect(target)
    try:
        health = await stubs.health.Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        services = [
            s.name async for answer in answers for s in answer.list_services_response.service
        ]
        assert "assistants.v1.AssistantService" in services
        assert await _refusal_reason(stubs) == "API_KEY_MISSING"
    finally:
        await stubs.close()


async def test_require_api_keys_closes_the_service_before_any_key_exists(
    sqlite_url: str,
) -> None:
    settings = server_settings(sqlite_url, require_api_keys=True)
    async with in_process_server(settings) as (_, stubs):
        assert await _refusal_reason(stubs) == "API_KEY_MISSING"
