"""A TCP proxy on 127.0.0.1 that stands between the service and PostgreSQL, so that a test can
take the database away without touching the server every other test shares.

Two ways to lose the database:

- `cut()`: as if the server stopped. Open connections are reset and new ones refused, so the
  client notices at once. `restore()` listens again on the same port.
- `partition()`: as if the network stopped carrying packets. Connections stay open and new
  ones are accepted, but no byte moves either way until `restore()`; then what was held back
  flows on, in order, as TCP would deliver it after retransmitting. Only a timeout tells the
  client anything is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

_CHUNK_BYTES = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the target."""

    client: asyncio.StreamWriter
    target: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.target):
            if writer is not None:
                writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._port = 0
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.accepted = 0
        """Connections accepted since the proxy started."""

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        # The first start picks a free port; later ones (after a cut) take the same one back.
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """The target is gone: refuse new connections and reset the open ones."""
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.abort()
        self._links.clear()

    def partition(self) -> None:
        """Hold every byte in both directions (and of new connections) until `restore()`."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Undo `cut()` or `partition()`."""
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client=writer)
        self._links.add(link)
        try:
            target_reader, target_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._links.discard(link)
            return
        link.target = target_writer
        link.pumps = [
            asyncio.create_task(self._pump(reader, target_writer)),
            asyncio.create_task(self._pump(target_reader, writer)),
        ]
        try:
            # When either side closes, the whole link goes, as a real connection would.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.abort()
            self._links.discard(link)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await source.read(_CHUNK_BYTES)
                if not data:
                    return
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
