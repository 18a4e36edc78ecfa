"""Another project's ids behave exactly like ids that do not exist, for reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from msgspec.structs import replace

from assistants_grpc.domain.models import Assistant, Message, Run, RunStep, Thread
from assistants_grpc.ports.storage import CursorNotFound, PageRequest, Storage

from .factories import (
    OTHER_PROJECT,
    PROJECT,
    make_assistant,
    make_message,
    make_run,
    make_step,
    make_thread,
)

EVERYTHING = PageRequest(limit=100, order="asc")


@dataclass
class Objects:
    assistant: Assistant
    thread: Thread
    message: Message
    run: Run
    step: RunStep


@pytest.fixture
async def objects(storage: Storage) -> Objects:
    thread = make_thread()
    run = make_run(thread, status="in_progress")
    made = Objects(
        assistant=make_assistant(),
        thread=thread,
        message=make_message(thread, run_id=run.id),
        run=run,
        step=make_step(run),
    )
    async with storage.transaction() as s:
        await s.insert_assistant(made.assistant)
        await s.insert_thread(made.thread)
        await s.insert_messages([made.message])
        await s.insert_run(made.run)
        await s.insert_step(made.step)
    return made


async def assert_untouched(storage: Storage, objects: Objects) -> None:
    async with storage.read() as s:
        assert await s.get_assistant(PROJECT, objects.assistant.id) == objects.assistant
        assert await s.get_thread(PROJECT, objects.thread.id) == objects.thread
        assert await s.get_message(PROJECT, objects.message.id) == objects.message
        assert await s.get_run(PROJECT, objects.run.id) == objects.run
        assert await s.get_step(PROJECT, objects.step.id) == objects.step


async def test_reads_from_another_project_find_nothing(storage: Storage, objects: Objects) -> None:
    thread_id, run_id = objects.thread.id, objects.run.id
    async with storage.read() as s:
        assert await s.get_assistant(OTHER_PROJECT, objects.assistant.id) is None
        assert await s.get_thread(OTHER_PROJECT, thread_id) is None
        assert await s.get_message(OTHER_PROJECT, objects.message.id) is None
        assert await s.get_run(OTHER_PROJECT, run_id) is None
        assert await s.get_step(OTHER_PROJECT, objects.step.id) is None
        assert await s.active_run(OTHER_PROJECT, thread_id) is None
        assert await s.all_messages(OTHER_PROJECT, thread_id) == []
        assert (await s.list_assistants(OTHER_PROJECT, EVERYTHING)).items == []
        assert (await s.list_messages(OTHER_PROJECT, thread_id, EVERYTHING)).items == []
        messages = await s.list_messages(OTHER_PROJECT, thread_id, EVERYTHING, run_id=run_id)
        assert messages.items == []
        assert (await s.list_runs(OTHER_PROJECT, thread_id, EVERYTHING)).items == []
        assert (await s.list_steps(OTHER_PROJECT, run_id, EVERYTHING)).items == []
    async with storage.transaction() as s:
        assert await s.get_thread(OTHER_PROJECT, thread_id, for_update=True) is None
        assert await s.get_run(OTHER_PROJECT, run_id, for_update=True) is None


async def test_cursors_from_another_project_are_not_found(
    storage: Storage, objects: Objects
) -> None:
    thread_id = objects.thread.id
    async with storage.read() as s:
        with pytest.raises(CursorNotFound):
            await s.list_assistants(
                OTHER_PROJECT, PageRequest(limit=10, order="asc", after=objects.assistant.id)
            )
        with pytest.raises(CursorNotFound):
            await s.list_messages(
                OTHER_PROJECT,
                thread_id,
                PageRequest(limit=10, order="asc", after=objects.message.id),
            )
        with pytest.raises(CursorNotFound):
            await s.list_runs(
                OTHER_PROJECT, thread_id, PageRequest(limit=10, order="asc", before=objects.run.id)
            )
        with pytest.raises(CursorNotFound):
            await s.list_steps(
                OTHER_PROJECT,
                objects.run.id,
                PageRequest(limit=10, order="asc", after=objects.step.id),
            )


async def test_deletes_from_another_project_change_nothing(
    storage: Storage, objects: Objects
) -> None:
    async with storage.transaction() as s:
        assert await s.delete_assistant(OTHER_PROJECT, objects.assistant.id) is False
        assert await s.delete_message(OTHER_PROJECT, objects.message.id) is False
        assert await s.delete_thread(OTHER_PROJECT, objects.thread.id) is False
    await assert_untouched(storage, objects)


async def test_updates_from_another_project_change_nothing(
    storage: Storage, objects: Objects
) -> None:
    async with storage.transaction() as s:
        await s.update_assistant(replace(objects.assistant, project_id=OTHER_PROJECT, name="taken"))
        await s.update_thread(replace(objects.thread, project_id=OTHER_PROJECT, metadata={}))
        await s.update_message(replace(objects.message, project_id=OTHER_PROJECT, metadata={}))
        stolen_run = replace(objects.run, project_id=OTHER_PROJECT, status="cancelled")
        assert await s.update_run(stolen_run) is False
        await s.update_step(replace(objects.step, project_id=OTHER_PROJECT, status="failed"))
    await assert_untouched(storage, objects)
