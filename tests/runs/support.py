"""Helpers of the run tests: servers wired to the fake upstream, the objects a run needs,
reading streams, and the checks that every streamed run must pass."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from assistants.v1 import assistant_service_pb2 as apb
from assistants.v1 import common_pb2, message_pb2, run_pb2, run_service_pb2_grpc, run_step_pb2
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import run_service_pb2 as rpb
from assistants.v1 import thread_service_pb2 as tpb
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.composition import Application, build_application, start
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..support.servers import server_settings
from ..support.stubs import Stubs

UPSTREAM_KEY_ENV = "ASSISTANTS_RUN_TESTS_UPSTREAM_KEY"
MODEL = "fake-model"
"""Served by the fake upstream through the openai SDK; retries quickly, waits up to 5 s."""
TIGHT_MODEL = "fake-tight-model"
"""Served by the fake upstream, but each wait on it is cut at 0.3 s and retried once."""
STREAM_LIMIT_SECONDS = 15.0

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


@dataclass
class RunServer:
    app: Application
    stubs: Stubs
    upstream: FakeUpstream
    stopped: bool = False

    @property
    def runs(self) -> run_service_pb2_grpc.RunServiceAsyncStub:
        return self.stubs.runs

    async def stop(self, grace_seconds: float = 0.5) -> None:
        """Drains and closes the server (streams still open are told to resubscribe)."""
        if not self.stopped:
            self.stopped = True
            await self.app.drain_and_close(grace_seconds)


def model_list(upstream: FakeUpstream, scripts: dict[str, Path]) -> str:
    remote = {
        "provider": "openai_compatible",
        "base_url": upstream.base_url,
        "api_key_env": UPSTREAM_KEY_ENV,
        "retry_backoff_seconds": 0.01,
        "retry_max_backoff_seconds": 0.02,
        "max_retry_after_seconds": 1,
    }
    routes: list[dict[str, Any]] = [
        {"name": "fake-*", **remote, "timeout_seconds": 5, "max_retries": 2},
        {"name": "fake-tight-*", **remote, "timeout_seconds": 0.3, "max_retries": 1},
    ]
    routes += [
        {"name": name, "provider": "scripted", "script": str(path)}
        for name, path in scripts.items()
    ]
    return json.dumps(routes)


@asynccontextmanager
async def serve(
    sqlite_url: str,
    folder: Path,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    *,
    scripts: dict[str, str],
    **overrides: Any,
) -> AsyncIterator[RunServer]:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-run-tests")
    paths: dict[str, Path] = {}
    for name, text in scripts.items():
        path = folder / (re.sub(r"[^A-Za-z0-9_-]", "_", name) + ".yaml")
        path.write_text(text)
        paths[name] = path
    settings = server_settings(sqlite_url, models=model_list(upstream, paths), **overrides)
    app = await build_application(settings)
    await start(app)
    running = RunServer(app=app, stubs=Stubs.connect(f"127.0.0.1:{app.port}"), upstream=upstream)
    try:
        yield running
    finally:
        await running.stubs.close()
        await running.stop()


# --- the objects a run needs -------------------------------------------------------------


def function_tool(name: str, description: str = "") -> common_pb2.Tool:
    return common_pb2.Tool(function=common_pb2.FunctionTool(name=name, description=description))


async def new_assistant(
    stubs: Stubs,
    *,
    model: str = MODEL,
    instructions: str = "Answer briefly.",
    tools: Sequence[common_pb2.Tool] = (),
    **fields: Any,
) -> str:
    response = await stubs.assistants.CreateAssistant(
        apb.CreateAssistantRequest(model=model, instructions=instructions, tools=tools, **fields)
    )
    return str(response.assistant.id)


async def new_thread(stubs: Stubs, *texts: str) -> str:
    response = await stubs.threads.CreateThread(
        tpb.CreateThreadRequest(
            messages=[message_pb2.MessageInput(role="user", text=text) for text in texts]
        )
    )
    return str(response.thread.id)


async def new_thread_with_assistant(stubs: Stubs, **assistant: Any) -> tuple[str, str]:
    """An assistant, and a thread asking it something."""
    return await new_thread(stubs, "Hello there"), await new_assistant(stubs, **assistant)


# --- reading streams ---------------------------------------------------------------------


async def read_all(
    call: grpc.aio.UnaryStreamCall[Any, RunStreamEvent],
    limit_seconds: float = STREAM_LIMIT_SECONDS,
) -> list[RunStreamEvent]:
    """The stream's (remaining) events until it ends."""
    events: list[RunStreamEvent] = []
    async with asyncio.timeout(limit_seconds):
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return events
            assert isinstance(event, RunStreamEvent)
            events.append(event)


async def read_until(
    call: grpc.aio.UnaryStreamCall[Any, RunStreamEvent],
    event_name: str,
    limit_seconds: float = STREAM_LIMIT_SECONDS,
) -> list[RunStreamEvent]:
    """Events up to and including the first one named `event_name`; the call stays open."""
    events: list[RunStreamEvent] = []
    async with asyncio.timeout(limit_seconds):
        while True:
            event = await call.read()
            assert event is not grpc.aio.EOF, f"the stream ended before {event_name}"
            assert isinstance(event, RunStreamEvent)
            events.append(event)
            if event.event == event_name:
                return events


def names(events: Iterable[RunStreamEvent]) -> list[str]:
    """Event names, with each run of consecutive deltas collapsed into `<name>+`: how many
    deltas a stream carries depends on how the model's pieces were batched."""
    collapsed: list[str] = []
    for event in events:
        name = event.event
        if name.endswith(".delta"):
            name += "+"
            if collapsed and collapsed[-1] == name:
                continue
        collapsed.append(name)
    return collapsed


def streamed_text(events: Iterable[RunStreamEvent], message_id: str) -> str:
    return "".join(
        part.text.value
        for event in events
        if event.event == "thread.message.delta" and event.message_delta.id == message_id
        for part in event.message_delta.delta.content
    )


def last_run(events: Sequence[RunStreamEvent]) -> run_pb2.Run:
    """The run as the last run event of a stream shows it."""
    return [e.run for e in events if e.WhichOneof("data") == "run"][-1]


def only(events: Iterable[RunStreamEvent], name: str) -> RunStreamEvent:
    [event] = [e for e in events if e.event == name]
    return event


# --- what every stream must satisfy -------------------------------------------------------


def payload_field(event_name: str) -> str:
    if event_name == "thread.created":
        return "thread"
    if event_name == "thread.run.step.delta":
        return "run_step_delta"
    if event_name.startswith("thread.run.step."):
        return "run_step"
    if event_name.startswith("thread.run."):
        return "run"
    if event_name == "thread.message.delta":
        return "message_delta"
    if event_name.startswith("thread.message."):
        return "message"
    return event_name  # `error`, `done`


_OPENING = {"created", "in_progress"}


def check_stream(
    events: Sequence[RunStreamEvent], *, earlier: Sequence[RunStreamEvent] = ()
) -> None:
    """What OpenAI's stream promises, for every stream of a run (`earlier`: the run's events
    before this stream began): sequence numbers dense, following on from `earlier`; payloads
    of the type the event names, in the state it names; an object's `created` before anything
    else about it; deltas that carry their `index`; and `done` once, last, right after a
    terminal run event or `thread.run.requires_action`."""
    assert events, "the stream carried no events"
    run_id = events[0].run_id
    after = len(earlier)
    assert [e.sequence_number for e in events] == list(range(after + 1, after + 1 + len(events)))
    seen_created: set[str] = set()
    seen_call_indexes: set[tuple[str, int]] = set()
    for event in [*earlier, *events]:
        if event.event in ("thread.run.step.created", "thread.message.created"):
            seen_created.add(event.run_step.id or event.message.id)
    seen_created -= {e.run_step.id or e.message.id for e in events if e.event.endswith(".created")}
    for event in events:
        name = event.event
        assert event.run_id == run_id, event
        assert event.WhichOneof("data") == payload_field(name), event
        state = name.rsplit(".", 1)[-1]
        if name == "thread.created":
            assert event.thread.id.startswith("thread_")
        elif name == "thread.run.step.delta":
            step_delta = event.run_step_delta
            assert step_delta.object == "thread.run.step.delta"
            assert step_delta.id in seen_created, f"a delta of {step_delta.id} before its creation"
            assert step_delta.delta.step_details.type == "tool_calls"
            for call in step_delta.delta.step_details.tool_calls:
                assert call.type == "function"
                key = (step_delta.id, call.index)
                if key not in seen_call_indexes:
                    # The first delta of a call says which call it is.
                    assert call.id.startswith("call_"), call
                    assert call.function.name, call
                    seen_call_indexes.add(key)
        elif name.startswith("thread.run.step."):
            step = event.run_step
            assert step.run_id == run_id
            assert step.object == "thread.run.step"
            assert step.status == ("in_progress" if state in _OPENING else state), event
            if state == "created":
                seen_created.add(step.id)
            else:
                assert step.id in seen_created, f"{name} of step {step.id} before its creation"
        elif name.startswith("thread.run."):
            assert event.run.id == run_id
            assert event.run.object == "thread.run"
            assert event.run.status == ("queued" if state == "created" else state), event
        elif name == "thread.message.delta":
            delta = event.message_delta
            assert delta.object == "thread.message.delta"
            assert delta.id in seen_created, f"a delta of message {delta.id} before its creation"
            assert delta.delta.content, event
            for part in delta.delta.content:
                assert part.index == 0, part
                assert part.type == "text", part
                assert part.text.value, part
        elif name.startswith("thread.message."):
            message = event.message
            assert message.run_id == run_id
            assert message.role == "assistant"
            assert message.status == ("in_progress" if state in _OPENING else state), event
            if state == "created":
                seen_created.add(message.id)
            else:
                assert message.id in seen_created, f"{name} before the message's creation"
    done = [i for i, e in enumerate(events) if e.event == "done"]
    assert done == [len(events) - 1], f"`done` must come once, last: {names(events)}"
    assert events[-1].done.data == "[DONE]"
    ending = [*earlier, *events][-2]
    assert ending.WhichOneof("data") == "run", ending
    assert ending.run.status in TERMINAL | {"requires_action"}, ending


# --- the state a run left behind ----------------------------------------------------------


@dataclass
class RunState:
    run: run_pb2.Run
    steps: list[run_step_pb2.RunStep]
    """Oldest first."""
    messages: list[message_pb2.Message]
    """The messages the run wrote, oldest first."""


async def stored_state(stubs: Stubs, thread_id: str, run_id: str) -> RunState:
    run = (await stubs.runs.GetRun(rpb.GetRunRequest(thread_id=thread_id, run_id=run_id))).run
    steps = await stubs.runs.ListRunSteps(
        rpb.ListRunStepsRequest(thread_id=thread_id, run_id=run_id, order="asc", limit=100)
    )
    messages = await stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=thread_id, run_id=run_id, order="asc", limit=100)
    )
    return RunState(run=run, steps=list(steps.data), messages=list(messages.data))


async def wait_for_status(
    stubs: Stubs, thread_id: str, run_id: str, statuses: set[str], limit_seconds: float = 10.0
) -> run_pb2.Run:
    """Polls GetRun until the run is in one of `statuses`."""
    async with asyncio.timeout(limit_seconds):
        while True:
            response = await stubs.runs.GetRun(
                rpb.GetRunRequest(thread_id=thread_id, run_id=run_id)
            )
            if response.run.status in statuses:
                return response.run
            await asyncio.sleep(0.02)


def text_of(message: message_pb2.Message) -> str:
    return "".join(part.text.value for part in message.content if part.type == "text")
