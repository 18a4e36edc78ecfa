"""Clients for security tests: stubs whose every call carries an API key, and error details."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2_grpc

from assistants.v1 import (
    assistant_service_pb2_grpc,
    message_service_pb2_grpc,
    run_service_pb2_grpc,
    thread_service_pb2_grpc,
)

from ..support.stubs import Stubs


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


class _AddsHeader:
    """Adds one metadata pair to every call, as a client library configured with a key would."""

    def __init__(self, key: str, value: str) -> None:
        self._pair = (key, value)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._pair)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under the first call kind it implements, so unary and
# streaming calls need one interceptor each.
class _UnaryHeader(_AddsHeader, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamHeader(_AddsHeader, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> grpc.aio.UnaryStreamCall[Any, Any]:
        return await continuation(self._details(client_call_details), request)


def connect(
    target: str,
    *,
    key: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> Stubs:
    """Stubs on a new channel; with `key`, every call presents it as a Bearer token."""
    interceptors: list[grpc.aio.ClientInterceptor] | None = None
    if key is not None:
        header = ("authorization", f"Bearer {key}")
        interceptors = [_UnaryHeader(*header), _StreamHeader(*header)]
    channel = (
        grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
        if credentials is not None
        else grpc.aio.insecure_channel(target, interceptors=interceptors)
    )
    return Stubs(
        channel=channel,
        assistants=assistant_service_pb2_grpc.AssistantServiceStub(channel),
        threads=thread_service_pb2_grpc.ThreadServiceStub(channel),
        messages=message_service_pb2_grpc.MessageServiceStub(channel),
        runs=run_service_pb2_grpc.RunServiceStub(channel),
        health=health_pb2_grpc.HealthStub(channel),
    )


def unchanged(data: bytes) -> bytes:
    """A (de)serializer that leaves bytes as they are, for calls that send raw bytes."""
    return data


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call's google.rpc.Status, if it carries one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None
