"""Generated stubs of every service on one channel."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc

from assistants.v1 import (
    assistant_service_pb2_grpc,
    message_service_pb2_grpc,
    run_service_pb2_grpc,
    thread_service_pb2_grpc,
)


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    assistants: assistant_service_pb2_grpc.AssistantServiceAsyncStub
    threads: thread_service_pb2_grpc.ThreadServiceAsyncStub
    messages: message_service_pb2_grpc.MessageServiceAsyncStub
    runs: run_service_pb2_grpc.RunServiceAsyncStub
    health: health_pb2_grpc.HealthStub

    @classmethod
    def connect(cls, target: str, credentials: grpc.ChannelCredentials | None = None) -> Stubs:
        channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(target)
        )
        return cls(
            channel=channel,
            assistants=assistant_service_pb2_grpc.AssistantServiceStub(channel),
            threads=thread_service_pb2_grpc.ThreadServiceStub(channel),
            messages=message_service_pb2_grpc.MessageServiceStub(channel),
            runs=run_service_pb2_grpc.RunServiceStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
        )

    async def close(self) -> None:
        await self.channel.close()
