"""The real `assistants-grpc serve` process on a fresh database, called with grpcurl."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest

from ..support.servers import ServerProcess

Launch = Callable[..., Awaitable[ServerProcess]]
"""Starts a server process: `await launch(*extra_args, env={...})`."""


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    """Starts server processes for one test and stops whatever is still running after it."""
    started: list[ServerProcess] = []

    async def start(*args: str, env: Mapping[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(["--no-log-json", "--log-level", "WARNING", *args], env=env)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    # In a folder that does not exist yet: creating it is part of the first start.
    return tmp_path / "data" / "assistants.db"


@pytest.fixture
def database_url(database_file: Path) -> str:
    return f"sqlite:///{database_file}"
