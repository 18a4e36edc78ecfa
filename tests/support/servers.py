"""Servers for tests: the real application in-process on a port-0 server, or the real
`assistants-grpc serve` process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from assistants_grpc.composition import Application, build_application, start
from assistants_grpc.config import Settings

from .stubs import Stubs

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


def server_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test server: loopback, port 0, quick polling, quiet logs."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_url": database_url,
        "log_json": False,
        "log_level": "WARNING",
        "poll_interval_seconds": 0.2,
        "grace_period_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def in_process_server(settings: Settings) -> AsyncIterator[tuple[Application, Stubs]]:
    app = await build_application(settings)
    await start(app)
    stubs = Stubs.connect(f"127.0.0.1:{app.port}")
    try:
        yield app, stubs
    finally:
        await stubs.close()
        await app.drain_and_close(0.5)


def server_command() -> list[str]:
    """The installed console script when there is one, else the module."""
    script = Path(sys.executable).with_name("assistants-grpc")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "assistants_grpc.cli"]


class ServerProcess:
    """`assistants-grpc serve` as a child process on a free port."""

    def __init__(self, args: list[str], env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        # A plain Popen (not asyncio's) so that the process outlives the test's event loop
        # when a test hands it to another fixture; its output is read by a thread.
        self.process = await asyncio.to_thread(
            subprocess.Popen,
            [*server_command(), "serve", "--host", "127.0.0.1", "--port", "0", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        self.port = await asyncio.wait_for(asyncio.to_thread(self._read_port), timeout)

    def _read_port(self) -> int:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = _LISTENING.search(line)
            if match:
                # Keep draining output so the child never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return int(match.group(2))
        raise RuntimeError("server exited before listening:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def kill(self) -> None:
        """kill -9: no drain, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
