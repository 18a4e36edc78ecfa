"""The process's life: the SQLite file is created on first start (in WAL mode), everything written
survives a restart, and SIGTERM drains: health turns NOT_SERVING, new calls are refused, calls in
flight finish, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from .conftest import Launch
from .grpcurl import GRPCURL, Grpcurl, parse_json_stream

pytestmark = pytest.mark.e2e

SLOW_MODEL = "scripted-slow"
SLOW_REPLY_WORDS = 40
TOKEN_DELAY_MS = 100


def journal_mode(database_file: Path) -> str:
    assert database_file.exists(), f"{database_file} was not created"
    with closing(sqlite3.connect(database_file)) as connection:
        mode: str = connection.execute("PRAGMA journal_mode").fetchone()[0]
        return mode


async def snapshot(grpcurl: Grpcurl, ids: dict[str, str]) -> dict[str, Any]:
    """Everything the API shows about the objects written before the restart."""
    thread = {"thread_id": ids["thread"]}
    run = {**thread, "run_id": ids["run"]}
    calls = {
        "assistant": grpcurl.call(
            "assistants.v1.AssistantService/GetAssistant", {"assistant_id": ids["assistant"]}
        ),
        "thread": grpcurl.call("assistants.v1.ThreadService/GetThread", thread),
        "messages": grpcurl.call(
            "assistants.v1.MessageService/ListMessages", {**thread, "order": "asc"}
        ),
        "run": grpcurl.call("assistants.v1.RunService/GetRun", run),
        "steps": grpcurl.call("assistants.v1.RunService/ListRunSteps", run),
        "events": grpcurl.stream("assistants.v1.RunService/SubscribeRun", run),
    }
    results = await asyncio.gather(*calls.values())
    return dict(zip(calls, results, strict=True))


async def test_everything_written_is_there_after_a_restart(
    launch: Launch, database_file: Path, database_url: str
) -> None:
    server = await launch("--database-url", database_url)
    # Created on first start, with its folder.
    assert journal_mode(database_file) == "wal"

    grpcurl = Grpcurl(server.target)
    assistant = (
        await grpcurl.call(
            "assistants.v1.AssistantService/CreateAssistant",
            {
                "model": "scripted-echo",
                "name": "Survivor",
                "instructions": "Echo.",
                "tools": [{"type": "code_interpreter"}, {"type": "file_search"}],
                "metadata": {"kept": "yes"},
                "temperature": 0.5,
            },
        )
    )["assistant"]
    thread = (
        await grpcurl.call(
            "assistants.v1.ThreadService/CreateThread",
            {
                "messages": [{"role": "user", "text": "first"}],
                "metadata": {"topic": "restart"},
                "tool_resources": {"code_interpreter": {"file_ids": ["file-1"]}},
            },
        )
    )["thread"]
    await grpcurl.call(
        "assistants.v1.MessageService/CreateMessage",
        {
            "thread_id": thread["id"],
            "role": "user",
            "parts": {"parts": [{"text": "look"}, {"image_file": {"file_id": "file-img"}}]},
            "metadata": {"n": "2"},
        },
    )
    run = (
        await grpcurl.call(
            "assistants.v1.RunService/RunThread",
            {"thread_id": thread["id"], "assistant_id": assistant["id"]},
        )
    )["run"]
    assert run["status"] == "completed"
    ids = {"assistant": assistant["id"], "thread": thread["id"], "run": run["id"]}
    before = await snapshot(grpcurl, ids)
    assert len(before["messages"]["data"]) == 3
    assert before["events"][-1]["event"] == "done"

    assert await server.terminate() == 0
    restarted = await launch("--database-url", database_url)
    after = await snapshot(Grpcurl(restarted.target), ids)
    assert after == before


def slow_model_settings(tmp_path: Path) -> list[str]:
    """A model that streams its reply a word at a time, so that a run stays in flight for
    about four seconds: time enough, even on a loaded machine, to watch the drain from outside
    with a few grpcurl calls, and well within the grace period."""
    script = tmp_path / "slow.yaml"
    words = " ".join(f"word{i}" for i in range(SLOW_REPLY_WORDS))
    script.write_text(f"token_delay_ms: {TOKEN_DELAY_MS}\nturns:\n  - reply: {words}\n")
    models = json.dumps([{"name": SLOW_MODEL, "provider": "scripted", "script": str(script)}])
    return ["--models", models]


async def read_until_event(stream: asyncio.StreamReader, event: str, seen: list[str]) -> None:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 20)).decode()
        assert line, f"the stream ended before {event}: {''.join(seen)}"
        seen.append(line)
        if f'"event": "{event}"' in line:
            return


async def test_sigterm_drains_calls_in_flight_and_exits_zero(
    launch: Launch, database_url: str, tmp_path: Path
) -> None:
    server = await launch(
        "--database-url",
        database_url,
        "--grace-period-seconds",
        "15",
        *slow_model_settings(tmp_path),
    )
    grpcurl = Grpcurl(server.target)
    assert await grpcurl.health() == "SERVING"
    assistant_id = (
        await grpcurl.call("assistants.v1.AssistantService/CreateAssistant", {"model": SLOW_MODEL})
    )["assistant"]["id"]
    thread_id = (
        await grpcurl.call(
            "assistants.v1.ThreadService/CreateThread",
            {"messages": [{"role": "user", "text": "Talk slowly."}]},
        )
    )["thread"]["id"]

    stream = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        "-d",
        json.dumps({"thread_id": thread_id, "assistant_id": assistant_id}),
        server.target,
        "assistants.v1.RunService/RunThreadStream",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert stream.stdout is not None
    seen: list[str] = []
    # The model has started answering: the run is in flight.
    await read_until_event(stream.stdout, "thread.message.delta", seen)

    assert server.process is not None
    signalled_at = time.monotonic()
    server.process.terminate()

    # Health says NOT_SERVING while the run finishes; a new call is refused meanwhile.
    deadline = time.monotonic() + 5
    while await grpcurl.health() != "NOT_SERVING":
        assert time.monotonic() < deadline, "health never turned NOT_SERVING"
    refused = await grpcurl.fail("assistants.v1.ThreadService/CreateThread", {})
    assert refused.code == 14  # UNAVAILABLE
    assert refused.detail("ErrorInfo")["reason"] == "DRAINING"

    # The stream in flight runs to its end.
    rest, errors = await asyncio.wait_for(stream.communicate(), 30)
    assert stream.returncode == 0, errors.decode()
    events = [e["event"] for e in parse_json_stream("".join(seen) + rest.decode())]
    assert events[-2:] == ["thread.run.completed", "done"]
    deltas = events.count("thread.message.delta")
    assert deltas > 1

    exit_code = await asyncio.wait_for(asyncio.to_thread(server.process.wait), 30)
    assert exit_code == 0
    assert time.monotonic() - signalled_at < 15
    output = "".join(server.output)
    assert "draining" in output
    assert "stopped" in output
