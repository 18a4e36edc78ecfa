"""A transaction that raises leaves no trace, whatever it had written."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from assistants_grpc.ports.storage import ApiKeyRecord, PageRequest, Storage

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


class AbandonedError(Exception):
    """Raised by a test to abandon its transaction half way."""


async def test_an_exception_rolls_back_every_write(storage: Storage) -> None:
    existing = make_assistant(name="before")
    old_thread = make_thread()
    old_message = make_message(old_thread)
    async with storage.transaction() as s:
        await s.insert_assistant(existing)
        await s.insert_thread(old_thread)
        await s.insert_messages([old_message])

    thread = make_thread()
    run = make_run(thread)
    message = make_message(thread, run_id=run.id)
    step = make_step(run)

    async def write_everything_then_fail() -> None:
        async with storage.transaction() as s:
            await s.insert_thread(thread)
            await s.insert_messages([message])
            await s.insert_run(run)
            await s.insert_step(step)
            await s.append_events([done_event(run.id, 1)])
            await s.insert_api_key(ApiKeyRecord("key_1", PROJECT, "ci", "hash_1", NOW))
            await s.update_assistant(replace(existing, name="after"))
            await s.delete_thread(PROJECT, old_thread.id)
            raise AbandonedError

    with pytest.raises(AbandonedError):
        await write_everything_then_fail()

    async with storage.read() as s:
        assert await s.get_thread(PROJECT, thread.id) is None
        assert await s.get_message(PROJECT, message.id) is None
        assert await s.get_run_any_project(run.id) is None
        assert await s.get_step(PROJECT, step.id) is None
        assert await s.last_sequence_number(run.id) == 0
        assert await s.list_api_keys() == []
        assert await s.get_assistant(PROJECT, existing.id) == existing
        assert await s.get_thread(PROJECT, old_thread.id) == old_thread
        assert await s.all_messages(PROJECT, old_thread.id) == [old_message]


async def test_the_storage_works_on_after_a_rollback(storage: Storage) -> None:
    async def fail() -> None:
        async with storage.transaction() as s:
            await s.insert_assistant(make_assistant())
            raise AbandonedError

    with pytest.raises(AbandonedError):
        await fail()
    assistant = make_assistant()

    async with storage.transaction() as s:
        await s.insert_assistant(assistant)

    async with storage.read() as s:
        page = await s.list_assistants(PROJECT, PageRequest(limit=10, order="asc"))
    assert page.items == [assistant]
