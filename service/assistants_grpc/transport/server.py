"""The grpc.aio server: servicers, health, reflection, TLS, and a graceful drain."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from assistants.v1 import (
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    message_service_pb2,
    message_service_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from assistants_grpc.transport.interceptors import Authenticate, CallInterceptor, ServerState

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    assistant_service_pb2.DESCRIPTOR.services_by_name["AssistantService"].full_name,
    thread_service_pb2.DESCRIPTOR.services_by_name["ThreadService"].full_name,
    message_service_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name,
    run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
)


@dataclass(frozen=True, slots=True)
class Servicers:
    assistants: assistant_service_pb2_grpc.AssistantServiceServicer
    threads: thread_service_pb2_grpc.ThreadServiceServicer
    messages: message_service_pb2_grpc.MessageServiceServicer
    runs: run_service_pb2_grpc.RunServiceServicer


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


class AssistantsServer:
    """Owns the grpc.aio server and its health state."""

    def __init__(
        self,
        servicers: Servicers,
        *,
        authenticate: Authenticate | None,
        max_message_bytes: int,
        reflection_enabled: bool = True,
        tracing: bool = False,
    ) -> None:
        self.state = ServerState()
        options: Sequence[tuple[str, Any]] = (
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # grpc-core cancels calls beyond 1000 waiting for a handler; a burst of callers
            # (many clients starting streams at once) should queue, not fail.
            ("grpc.server.max_pending_requests", 10_000),
            ("grpc.so_reuseport", 0),
            # Keep idle stream connections alive through proxies and NAT.
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        )
        self.server = grpc.aio.server(
            interceptors=[CallInterceptor(authenticate, self.state, tracing=tracing)],
            options=options,
        )
        assistant_service_pb2_grpc.add_AssistantServiceServicer_to_server(
            servicers.assistants, self.server
        )
        thread_service_pb2_grpc.add_ThreadServiceServicer_to_server(servicers.threads, self.server)
        message_service_pb2_grpc.add_MessageServiceServicer_to_server(
            servicers.messages, self.server
        )
        run_service_pb2_grpc.add_RunServiceServicer_to_server(servicers.runs, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if reflection_enabled:
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
            )

    def listen(self, host: str, port: int, tls: TlsFiles | None = None) -> int:
        """Binds the port; returns the port actually bound (useful with port 0)."""
        address = (
            f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        )
        if tls is None:
            bound = self.server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.private_key, tls.certificate_chain)],
                root_certificates=tls.client_ca,
                require_client_auth=tls.client_ca is not None,
            )
            bound = self.server.add_secure_port(address, credentials)
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        return bound

    async def start(self) -> None:
        await self.server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: int) -> None:
        await self.health.set("", status)
        for name in SERVICE_NAMES:
            await self.health.set(name, status)

    async def begin_drain(self) -> None:
        """Health says NOT_SERVING and new calls are refused; calls in flight go on."""
        self.state.draining = True
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace_seconds: float) -> None:
        await self.begin_drain()
        await self.server.stop(grace_seconds)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
