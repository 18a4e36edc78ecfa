"""The real process on PostgreSQL, named by --database-url, in a database of its own: migrated by
`assistants-grpc migrate`, then serving assistants, threads, messages and runs, and stopping
cleanly. (What survives a restart is shown on SQLite; the storage suite runs on both.)"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ..storage.backends import POSTGRES_ADMIN_URL, unique_name, with_database
from ..support.servers import server_command
from .conftest import Launch
from .grpcurl import Grpcurl, run_process

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty database, dropped afterwards; a skip when no server answers, except in CI,
    which must really test PostgreSQL."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.exceptions.CannotConnectNowError) as error:
        reason = f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error!r}"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason)
        pytest.skip(reason)
    name = unique_name("assistants_e2e")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_serves_from_postgresql(launch: Launch, postgres_url: str) -> None:
    migrated = await run_process(
        *server_command(), "migrate", "--database-url", postgres_url, timeout=60
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    server = await launch("--database-url", postgres_url)
    grpcurl = Grpcurl(server.target)
    assistant_id = (
        await grpcurl.call(
            "assistants.v1.AssistantService/CreateAssistant",
            {"model": "scripted-echo", "name": "On PostgreSQL"},
        )
    )["assistant"]["id"]
    thread_id = (
        await grpcurl.call(
            "assistants.v1.ThreadService/CreateThread",
            {"messages": [{"role": "user", "text": "Hello from PostgreSQL"}]},
        )
    )["thread"]["id"]
    run = (
        await grpcurl.call(
            "assistants.v1.RunService/RunThread",
            {"thread_id": thread_id, "assistant_id": assistant_id},
        )
    )["run"]
    assert run["status"] == "completed"
    messages = await grpcurl.call(
        "assistants.v1.MessageService/ListMessages", {"thread_id": thread_id, "order": "asc"}
    )
    assert [m["role"] for m in messages["data"]] == ["user", "assistant"]
    answer = messages["data"][1]["content"][0]["text"]["value"]
    assert answer == "You said: Hello from PostgreSQL"
    assert await server.terminate() == 0
