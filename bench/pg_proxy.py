"""A TCP relay in front of PostgreSQL that counts round trips, for the replica benchmark.

A round trip is counted each time a client starts sending after having received something
from the server (or sends for the first time on a connection): a pipelined batch of protocol
messages answered together counts once, as it costs one network wait. Notifications that the
server pushes unasked (LISTEN/NOTIFY) cost the client no wait and start no round trip.

    python bench/pg_proxy.py --upstream 127.0.0.1:5432
    # prints "listening on 127.0.0.1:PORT control 127.0.0.1:PORT"

Connecting to the control port returns the counts so far as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from dataclasses import asdict, dataclass

import uvloop

BUFFER_BYTES = 256 * 1024


@dataclass
class Counts:
    round_trips: int = 0
    connections: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0


class Relay:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.counts = Counts()

    async def handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_writer.close()
            return
        self.counts.connections += 1
        # Which side spoke last on this connection: the client starts a round trip when it
        # speaks after the server did.
        last_speaker = ["server"]

        async def client_to_server() -> None:
            while data := await client_reader.read(BUFFER_BYTES):
                if last_speaker[0] == "server":
                    self.counts.round_trips += 1
                    last_speaker[0] = "client"
                self.counts.bytes_to_server += len(data)
                server_writer.write(data)
                await server_writer.drain()

        async def server_to_client() -> None:
            while data := await server_reader.read(BUFFER_BYTES):
                last_speaker[0] = "server"
                self.counts.bytes_to_client += len(data)
                client_writer.write(data)
                await client_writer.drain()

        pumps = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        with contextlib.suppress(ConnectionError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for writer in (client_writer, server_writer):
            writer.close()

    async def report(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps(asdict(self.counts)).encode() + b"\n")
        await writer.drain()
        writer.close()


async def read_counts(control_port: int) -> Counts:
    """The relay's counts, read through its control port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
    line = await reader.readline()
    writer.close()
    return Counts(**json.loads(line))


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.upstream.rpartition(":")
    relay = Relay(host, int(port))
    server = await asyncio.start_server(relay.handle, "127.0.0.1", args.port)
    control = await asyncio.start_server(relay.report, "127.0.0.1", 0)
    relay_port = server.sockets[0].getsockname()[1]
    control_port = control.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{relay_port} control 127.0.0.1:{control_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    control.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Count round trips to PostgreSQL.")
    parser.add_argument("--upstream", default="127.0.0.1:5432")
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
