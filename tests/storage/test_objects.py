"""Each kind of object goes in, comes back unchanged, can be changed and goes away."""

from __future__ import annotations

from msgspec.structs import replace

from assistants_grpc.domain.models import ContentPart, Usage
from assistants_grpc.ports.storage import PageRequest, Storage

from .factories import (
    NOW,
    PROJECT,
    done_event,
    make_assistant,
    make_message,
    make_run,
    make_step,
    make_thread,
)

EVERYTHING = PageRequest(limit=100, order="asc")


async def test_assistant_round_trip_update_and_delete(storage: Storage) -> None:
    assistant = make_assistant()
    async with storage.transaction() as s:
        await s.insert_assistant(assistant)
    async with storage.read() as s:
        assert await s.get_assistant(PROJECT, assistant.id) == assistant

    changed = replace(assistant, name="renamed", tools=[], metadata={}, temperature=None)
    async with storage.transaction() as s:
        await s.update_assistant(changed)
    async with storage.read() as s:
        assert await s.get_assistant(PROJECT, assistant.id) == changed

    async with storage.transaction() as s:
        assert await s.delete_assistant(PROJECT, assistant.id) is True
    async with storage.transaction() as s:
        assert await s.get_assistant(PROJECT, assistant.id) is None
        assert await s.delete_assistant(PROJECT, assistant.id) is False
        assert (await s.list_assistants(PROJECT, EVERYTHING)).items == []


async def test_thread_round_trip_update_and_delete(storage: Storage) -> None:
    thread = make_thread()
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        assert await s.get_thread(PROJECT, thread.id, for_update=True) == thread
    async with storage.read() as s:
        assert await s.get_thread(PROJECT, thread.id) == thread

    changed = replace(thread, metadata={"topic": "changed"})
    async with storage.transaction() as s:
        await s.update_thread(changed)
    async with storage.read() as s:
        assert await s.get_thread(PROJECT, thread.id) == changed

    async with storage.transaction() as s:
        assert await s.delete_thread(PROJECT, thread.id) is True
    async with storage.transaction() as s:
        assert await s.get_thread(PROJECT, thread.id) is None
        assert await s.delete_thread(PROJECT, thread.id) is False


async def test_message_round_trip_update_and_delete(storage: Storage) -> None:
    thread = make_thread()
    first, second = make_message(thread, text="one"), make_message(thread, text="two")
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_messages([first, second])
        await s.insert_messages([])
    async with storage.read() as s:
        assert await s.get_message(PROJECT, first.id) == first
        assert await s.get_message(PROJECT, second.id) == second

    changed = replace(
        first,
        content=[ContentPart(type="text", text="edited")],
        status="incomplete",
        incomplete_reason="max_tokens",
    )
    async with storage.transaction() as s:
        await s.update_message(changed)
    async with storage.read() as s:
        assert await s.get_message(PROJECT, first.id) == changed
        assert await s.get_message(PROJECT, second.id) == second

    async with storage.transaction() as s:
        assert await s.delete_message(PROJECT, first.id) is True
    async with storage.transaction() as s:
        assert await s.get_message(PROJECT, first.id) is None
        assert await s.delete_message(PROJECT, first.id) is False
        assert await s.all_messages(PROJECT, thread.id) == [second]


async def test_run_round_trip_and_update(storage: Storage) -> None:
    thread = make_thread()
    run = make_run(thread)
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_run(run)
    async with storage.read() as s:
        assert await s.get_run(PROJECT, run.id) == run
        assert await s.get_run_any_project(run.id) == run
        assert await s.active_run(PROJECT, thread.id) == run
        assert (await s.list_runs(PROJECT, thread.id, EVERYTHING)).items == [run]

    finished = replace(run, status="completed", completed_at=NOW + 5, usage=Usage(prompt_tokens=1))
    async with storage.transaction() as s:
        assert await s.update_run(finished) is True
    async with storage.read() as s:
        assert await s.get_run(PROJECT, run.id) == finished
        assert await s.active_run(PROJECT, thread.id) is None

    async with storage.transaction() as s:
        assert await s.update_run(make_run(thread, status="completed")) is False


async def test_step_round_trip_and_update(storage: Storage) -> None:
    thread = make_thread()
    run = make_run(thread)
    tool_step = make_step(run)
    message_step = make_step(run, message_id="msg_1")
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_run(run)
        await s.insert_step(tool_step)
        await s.insert_step(message_step)
    async with storage.read() as s:
        assert await s.get_step(PROJECT, tool_step.id) == tool_step
        assert await s.all_steps(run.id) == [tool_step, message_step]

    done = replace(tool_step, status="completed", completed_at=NOW + 1)
    async with storage.transaction() as s:
        await s.update_step(done)
    async with storage.read() as s:
        assert await s.get_step(PROJECT, tool_step.id) == done
        page = await s.list_steps(PROJECT, run.id, EVERYTHING)
        assert page.items == [done, message_step]
        assert await s.get_step(PROJECT, "step_missing") is None


async def test_deleting_a_thread_deletes_everything_in_it(storage: Storage) -> None:
    thread, kept = make_thread(), make_thread()
    run, kept_run = make_run(thread, status="completed"), make_run(kept)
    message, kept_message = make_message(thread, run_id=run.id), make_message(kept)
    step, kept_step = make_step(run), make_step(kept_run)
    async with storage.transaction() as s:
        for t in (thread, kept):
            await s.insert_thread(t)
        await s.insert_messages([message, kept_message])
        for r in (run, kept_run):
            await s.insert_run(r)
        await s.insert_step(step)
        await s.insert_step(kept_step)
        await s.append_events([done_event(run.id, 1), done_event(kept_run.id, 1)])

    async with storage.transaction() as s:
        assert await s.delete_thread(PROJECT, thread.id) is True

    async with storage.read() as s:
        assert await s.get_message(PROJECT, message.id) is None
        assert await s.get_run(PROJECT, run.id) is None
        assert await s.get_run_any_project(run.id) is None
        assert await s.get_step(PROJECT, step.id) is None
        assert await s.all_steps(run.id) == []
        assert await s.read_events(run.id, 0, 10) == []
        assert await s.last_sequence_number(run.id) == 0
        # The neighbouring thread is untouched.
        assert await s.get_thread(PROJECT, kept.id) == kept
        assert await s.all_messages(PROJECT, kept.id) == [kept_message]
        assert await s.get_run(PROJECT, kept_run.id) == kept_run
        assert await s.get_step(PROJECT, kept_step.id) == kept_step
        assert await s.read_events(kept_run.id, 0, 10) == [done_event(kept_run.id, 1)]
