"""The floor of the CRUD benchmark: a bare grpc.aio server on uvloop (the runtime of the real
server) with only the standard health service, whose Check is a unary call that does nothing.
What one Check costs in server CPU is what any grpc.aio unary call costs on this machine before
the service does anything of its own.

    python bench/floor_server.py    # prints "listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import asyncio
import signal

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve() -> None:
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    uvloop.run(serve())
