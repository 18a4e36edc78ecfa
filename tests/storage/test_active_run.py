"""One active run per thread, enforced by the database even between racing writers."""

from __future__ import annotations

import asyncio

import pytest
from msgspec.structs import replace

from assistants_grpc.domain.models import Run, RunStatus, Thread
from assistants_grpc.ports.storage import ActiveRunExists, PageRequest, Storage

from .backends import Backend
from .factories import PROJECT, make_message, make_run, make_thread

_ALL = PageRequest(limit=100, order="asc")


async def insert_thread(storage: Storage) -> Thread:
    thread = make_thread()
    async with storage.transaction() as s:
        await s.insert_thread(thread)
    return thread


async def insert_run(storage: Storage, run: Run) -> None:
    async with storage.transaction() as s:
        await s.insert_run(run)


@pytest.mark.parametrize("status", sorted(RunStatus.ACTIVE))
async def test_a_second_active_run_is_refused(storage: Storage, status: str) -> None:
    thread = await insert_thread(storage)
    first = make_run(thread, status=status)
    await insert_run(storage, first)

    with pytest.raises(ActiveRunExists):
        await insert_run(storage, make_run(thread))

    async with storage.read() as s:
        assert await s.active_run(PROJECT, thread.id) == first
        assert [r.id for r in (await s.list_runs(PROJECT, thread.id, _ALL)).items] == [first.id]


async def test_a_new_run_is_allowed_once_the_previous_one_has_ended(storage: Storage) -> None:
    thread = await insert_thread(storage)
    run = make_run(thread)
    await insert_run(storage, run)
    for status in sorted(RunStatus.TERMINAL):
        async with storage.transaction() as s:
            assert await s.update_run(replace(run, status=status)) is True
        run = make_run(thread)
        await insert_run(storage, run)

    async with storage.read() as s:
        assert await s.active_run(PROJECT, thread.id) == run


async def test_a_run_cannot_become_active_again_beside_another(storage: Storage) -> None:
    thread = await insert_thread(storage)
    ended = make_run(thread, status="failed")
    await insert_run(storage, ended)
    await insert_run(storage, make_run(thread))

    with pytest.raises(ActiveRunExists):
        async with storage.transaction() as s:
            await s.update_run(replace(ended, status="queued"))

    async with storage.read() as s:
        assert await s.get_run(PROJECT, ended.id) == ended


async def test_other_threads_are_not_blocked(storage: Storage) -> None:
    first, second = await insert_thread(storage), await insert_thread(storage)
    await insert_run(storage, make_run(first))
    run = make_run(second)

    await insert_run(storage, run)

    async with storage.read() as s:
        assert await s.active_run(PROJECT, second.id) == run


async def test_a_refused_run_takes_the_rest_of_its_transaction_with_it(storage: Storage) -> None:
    thread = await insert_thread(storage)
    first = make_run(thread)
    await insert_run(storage, first)
    message = make_message(thread)

    async def add_message_and_run() -> None:
        async with storage.transaction() as s:
            await s.insert_messages([message])
            await s.insert_run(make_run(thread))

    with pytest.raises(ActiveRunExists):
        await add_message_and_run()

    async with storage.read() as s:
        assert await s.get_message(PROJECT, message.id) is None


async def test_racing_writers_create_exactly_one_run(backend: Backend, storage: Storage) -> None:
    thread = await insert_thread(storage)
    contenders = 12
    # Where transactions can overlap, every contender first sees a thread without an active run,
    # so only the database's own rule can stop all but one of them.
    all_checked = asyncio.Barrier(contenders) if backend.concurrent_transactions else None

    async def contend() -> Run | None:
        run = make_run(thread)
        try:
            async with storage.transaction() as s:
                assert await s.get_thread(PROJECT, thread.id) is not None
                if all_checked is not None:
                    assert await s.active_run(PROJECT, thread.id) is None
                    await all_checked.wait()
                await s.insert_run(run)
        except ActiveRunExists:
            return None
        return run

    async with asyncio.timeout(10):
        outcomes = await asyncio.gather(*(contend() for _ in range(contenders)))

    winners = [run for run in outcomes if run is not None]
    assert len(winners) == 1
    async with storage.read() as s:
        assert await s.active_run(PROJECT, thread.id) == winners[0]
        assert (await s.list_runs(PROJECT, thread.id, _ALL)).items == winners
