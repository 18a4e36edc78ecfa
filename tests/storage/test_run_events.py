"""A run's event log: appended in order, read from any point, each sequence number once."""

from __future__ import annotations

import asyncio

import pytest

from assistants_grpc.domain.models import (
    ContentDelta,
    EventPayload,
    MessageDelta,
    RunEvent,
    RunStepDelta,
    StreamDone,
    StreamError,
    ToolCallDelta,
)
from assistants_grpc.ports.storage import Storage

from .backends import Backend
from .factories import PROJECT, done_event, make_message, make_run, make_step, make_thread


def run_story(run_id: str) -> list[RunEvent]:
    """One event of every payload kind, as a streamed run produces them."""
    thread = make_thread()
    run = make_run(thread)
    message = make_message(thread, run_id=run.id, role="assistant")
    payloads: list[tuple[str, EventPayload]] = [
        ("thread.created", thread),
        ("thread.run.created", run),
        ("thread.run.step.created", make_step(run, message_id=message.id)),
        (
            "thread.run.step.delta",
            RunStepDelta(
                id="step_1",
                step_type="tool_calls",
                tool_calls=[ToolCallDelta(index=0, id="call_1", name="lookup", arguments="{")],
            ),
        ),
        ("thread.message.created", message),
        (
            "thread.message.delta",
            MessageDelta(id=message.id, content=[ContentDelta(index=0, text="Hi")]),
        ),
        ("error", StreamError(code="server_error", message="upstream went away")),
        ("done", StreamDone()),
    ]
    return [
        RunEvent(run_id=run_id, sequence_number=number, event=event, data=data)
        for number, (event, data) in enumerate(payloads, start=1)
    ]


async def test_events_come_back_as_appended(storage: Storage) -> None:
    story = run_story("run_a")
    async with storage.transaction() as s:
        await s.append_events(story[:3])
        await s.append_events([])
        await s.append_events(story[3:])
        await s.append_events([done_event("run_b", 1)])

    async with storage.read() as s:
        assert await s.read_events("run_a", 0, 100) == story
        assert await s.read_events("run_a", 5, 100) == story[5:]
        assert await s.read_events("run_a", 2, 3) == story[2:5]
        assert await s.read_events("run_a", len(story), 100) == []
        assert await s.last_sequence_number("run_a") == len(story)
        assert await s.read_events("run_b", 0, 100) == [done_event("run_b", 1)]


async def test_a_run_without_events_starts_at_zero(storage: Storage) -> None:
    async with storage.read() as s:
        assert await s.last_sequence_number("run_none") == 0
        assert await s.read_events("run_none", 0, 10) == []


async def append(storage: Storage, *batches: list[RunEvent]) -> None:
    async with storage.transaction() as s:
        for batch in batches:
            await s.append_events(batch)


async def test_a_sequence_number_is_taken_once(backend: Backend, storage: Storage) -> None:
    await append(storage, [done_event("run_a", 1), done_event("run_a", 2)])

    # Neither the batch with a taken number nor anything else in its transaction is kept.
    with pytest.raises(backend.integrity_errors):
        await append(storage, [done_event("run_a", 3), done_event("run_a", 2)])
    with pytest.raises(backend.integrity_errors):
        await append(storage, [done_event("run_a", 4)], [done_event("run_a", 4)])

    async with storage.read() as s:
        assert await s.last_sequence_number("run_a") == 2
        assert await s.read_events("run_a", 0, 10) == [
            done_event("run_a", 1),
            done_event("run_a", 2),
        ]


async def test_writers_holding_the_run_lock_number_events_densely(storage: Storage) -> None:
    thread = make_thread()
    run = make_run(thread)
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_run(run)

    async def write(count: int) -> None:
        for _ in range(count):
            async with storage.transaction() as s:
                assert await s.get_run(PROJECT, run.id, for_update=True) == run
                number = await s.last_sequence_number(run.id) + 1
                await s.append_events([done_event(run.id, number)])

    async with asyncio.timeout(10):
        await asyncio.gather(*(write(4) for _ in range(6)))

    async with storage.read() as s:
        events = await s.read_events(run.id, 0, 100)
    assert [e.sequence_number for e in events] == list(range(1, 25))
