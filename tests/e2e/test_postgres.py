"""The real process on PostgreSQL, named by --database-url, in a database of its own: migrated by
`assistants-grpc migrate`, then serving assistants, threads, messages and runs, and stopping
cleanly. (What survives a restart is shown on SQLite; the storage suite runs on both.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ..support.postgres import fresh_postgres_database
from ..support.servers import server_command
from .conftest import Launch
from .grpcurl import Grpcurl, run_process

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database("assistants_e2e") as url:
        yield url


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
