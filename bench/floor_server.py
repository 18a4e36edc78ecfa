"""Floors for the benchmarks: a bare grpc.aio server on uvloop (the runtime of the real server).

It always serves the standard health service, whose Check is a unary call that does nothing:
what one Check costs in server CPU is what any grpc.aio unary call costs on this machine before
the service does anything of its own (the floor of the CRUD benchmark).

With `--relay-upstream URL` it also serves `RunService.RunThreadStream` as a bare relay: each
call streams a completion of the request's `model` from the OpenAI-compatible server at URL
through the service's own provider adapter (the openai SDK), and sends what arrives as one
`thread.message.delta` per window of `--window-ms`, then `done`. No database, no run, no steps:
what is left is the gRPC stream and the model call, the floor of the paced conversation
benchmark.

    python bench/floor_server.py [--relay-upstream URL]   # prints "listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from assistants.v1 import message_pb2, run_service_pb2
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.adapters.providers.openai_compatible import OpenAICompatibleProvider
from assistants_grpc.ports.model_provider import ChatRequest, TextDelta


class Relay:
    """RunThreadStream alone, registered through a generic handler (the generated servicer
    base would have every RPC implemented)."""

    def __init__(self, provider: OpenAICompatibleProvider, window_seconds: float) -> None:
        self._provider = provider
        self._window = window_seconds

    def handler(self) -> grpc.GenericRpcHandler:
        stream = grpc.unary_stream_rpc_method_handler(
            self.run_thread_stream,
            request_deserializer=run_service_pb2.RunThreadStreamRequest.FromString,
            response_serializer=RunStreamEvent.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            "assistants.v1.RunService", {"RunThreadStream": stream}
        )

    async def run_thread_stream(
        self,
        request: run_service_pb2.RunThreadStreamRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[RunStreamEvent]:
        chat = ChatRequest(
            model=request.model, messages=[{"role": "user", "content": "Tell me about foxes."}]
        )
        loop = asyncio.get_running_loop()
        sequence = 0
        pending: list[str] = []
        sent_at = -self._window
        async for event in self._provider.stream_chat(chat):
            if isinstance(event, TextDelta):
                pending.append(event.text)
            if pending and loop.time() - sent_at >= self._window:
                sequence += 1
                yield _delta(sequence, "".join(pending))
                pending.clear()
                sent_at = loop.time()
        if pending:
            sequence += 1
            yield _delta(sequence, "".join(pending))
        yield RunStreamEvent(sequence_number=sequence + 1, event="done")


def _delta(sequence: int, text: str) -> RunStreamEvent:
    content = message_pb2.MessageContentDelta(index=0, type="text")
    content.text.value = text
    return RunStreamEvent(
        sequence_number=sequence,
        event="thread.message.delta",
        message_delta=message_pb2.MessageDelta(
            id="msg_floor",
            object="thread.message.delta",
            delta=message_pb2.MessageDeltaBody(content=[content]),
        ),
    )


async def serve(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    provider: OpenAICompatibleProvider | None = None
    if args.relay_upstream:
        provider = OpenAICompatibleProvider.for_openai(
            label="floor", api_key="bench", base_url=args.relay_upstream
        )
        server.add_generic_rpc_handlers((Relay(provider, args.window_ms / 1000).handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)
    if provider is not None:
        await provider.aclose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--relay-upstream", help="serve RunThreadStream as a relay of this URL")
    parser.add_argument("--window-ms", type=float, default=200.0, help="text gathered per delta")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(serve(parse_args()))
