"""Every RPC of the contract is served (none answers UNIMPLEMENTED), plus health and
reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from assistants.v1 import (
    assistant_service_pb2,
    message_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)

from ..support.stubs import Stubs

SERVICES = [
    (assistant_service_pb2, "AssistantService", "assistants"),
    (thread_service_pb2, "ThreadService", "threads"),
    (message_service_pb2, "MessageService", "messages"),
    (run_service_pb2, "RunService", "runs"),
]


async def test_health_reports_serving_for_every_service(stubs: Stubs) -> None:
    for module, service, _ in SERVICES:
        name = module.DESCRIPTOR.services_by_name[service].full_name
        response = await stubs.health.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("module", "service", "attribute"), SERVICES)
async def test_every_rpc_is_implemented(
    stubs: Stubs, module: object, service: str, attribute: str
) -> None:
    descriptor = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
    stub = getattr(stubs, attribute)
    for method in descriptor.methods:
        request_class = getattr(module, method.input_type.name)
        call = getattr(stub, method.name)(request_class(), timeout=5)
        code = grpc.StatusCode.OK
        try:
            if method.server_streaming:
                async for _ in call:
                    break
            else:
                await call
        except grpc.aio.AioRpcError as error:
            code = error.code()
        # An empty request is a caller mistake; what matters is that it is served and handled.
        assert code != grpc.StatusCode.UNIMPLEMENTED, method.full_name
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), method.full_name
