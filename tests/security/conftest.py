"""Fixtures of the security tests: a storage for the key use cases, and a server whose calls
must carry keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.composition import Application

from ..support.servers import in_process_server, server_settings


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(str(tmp_path / "keys.db"))
    await storage.start()
    yield storage
    await storage.close()


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[Application]:
    """A loopback server with no key yet: open until a test creates one."""
    async with in_process_server(server_settings(sqlite_url)) as (application, _):
        yield application


@pytest.fixture
def target(app: Application) -> str:
    return f"127.0.0.1:{app.port}"


HANG_WORD = "hang"
"""A user message containing this word makes the scripted model hang until cancelled."""


@pytest.fixture
def hanging_models(tmp_path: Path) -> str:
    """An inline model list whose `scripted*` models hang on HANG_WORD and echo otherwise."""
    script = tmp_path / "hang.yaml"
    script.write_text(
        f"turns:\n  - when: {{last_user_message_contains: {HANG_WORD}}}\n    hang: true\n"
    )
    return json.dumps([{"name": "scripted*", "provider": "scripted", "script": str(script)}])
