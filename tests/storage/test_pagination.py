"""List pages: limit, order, cursors in both directions, and stability under ties and inserts."""

from __future__ import annotations

import pytest

from assistants_grpc.domain.models import Assistant, Message, Thread
from assistants_grpc.ports.storage import CursorNotFound, PageRequest, Storage

from .factories import PROJECT, make_assistant, make_message, make_run, make_step, make_thread


async def insert_assistants(storage: Storage, count: int) -> list[Assistant]:
    """`count` assistants created in the same second, in insertion order."""
    made = [make_assistant(name=f"a{i}") for i in range(count)]
    async with storage.transaction() as s:
        for assistant in made:
            await s.insert_assistant(assistant)
    return made


async def list_ids(storage: Storage, page: PageRequest) -> tuple[list[str], bool]:
    async with storage.read() as s:
        result = await s.list_assistants(PROJECT, page)
    return [a.id for a in result.items], result.has_more


async def walk(storage: Storage, order: str, limit: int) -> list[list[str]]:
    """Every page, each fetched with `after` set to the last id of the one before."""
    pages: list[list[str]] = []
    after: str | None = None
    for _ in range(100):
        ids, has_more = await list_ids(storage, PageRequest(limit=limit, order=order, after=after))
        pages.append(ids)
        if not has_more:
            return pages
        after = ids[-1]
    raise AssertionError(f"has_more never ended: {pages}")


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_pages_cover_every_item_once_in_order(storage: Storage, order: str) -> None:
    made = [a.id for a in await insert_assistants(storage, 7)]
    expected = made if order == "asc" else made[::-1]

    pages = await walk(storage, order, limit=3)

    assert pages == [expected[0:3], expected[3:6], expected[6:7]]


async def test_has_more_is_false_when_the_limit_is_met_exactly(storage: Storage) -> None:
    made = [a.id for a in await insert_assistants(storage, 4)]

    assert await list_ids(storage, PageRequest(limit=4, order="asc")) == (made, False)
    assert await list_ids(storage, PageRequest(limit=3, order="asc")) == (made[:3], True)
    assert await list_ids(storage, PageRequest(limit=50, order="desc")) == (made[::-1], False)
    last = PageRequest(limit=2, order="asc", after=made[-1])
    assert await list_ids(storage, last) == ([], False)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_before_walks_back_towards_the_first_item(storage: Storage, order: str) -> None:
    made = [a.id for a in await insert_assistants(storage, 7)]
    expected = made if order == "asc" else made[::-1]

    # From the end, each page asks for what comes before its own first item.
    newest_page = PageRequest(limit=3, order=order, before=expected[-1])
    assert await list_ids(storage, newest_page) == (expected[3:6], True)
    middle_page = PageRequest(limit=3, order=order, before=expected[3])
    assert await list_ids(storage, middle_page) == (expected[0:3], False)
    first_page = PageRequest(limit=3, order=order, before=expected[0])
    assert await list_ids(storage, first_page) == ([], False)


async def test_after_and_before_round_trip_between_neighbouring_pages(storage: Storage) -> None:
    made = [a.id for a in await insert_assistants(storage, 6)]

    second, _ = await list_ids(storage, PageRequest(limit=2, order="desc", after=made[-2]))
    back, has_more = await list_ids(storage, PageRequest(limit=2, order="desc", before=second[0]))

    assert second == [made[3], made[2]]
    assert back == [made[5], made[4]]
    assert has_more is False


async def test_items_sharing_a_second_list_the_same_way_every_time(storage: Storage) -> None:
    made = [a.id for a in await insert_assistants(storage, 25)]

    for _ in range(3):
        assert await walk(storage, "asc", limit=4) == [made[i : i + 4] for i in range(0, 25, 4)]
        pages = await walk(storage, "desc", limit=6)
        assert [item for page in pages for item in page] == made[::-1]


async def test_items_inserted_between_pages_neither_repeat_nor_skip(storage: Storage) -> None:
    made = [a.id for a in await insert_assistants(storage, 6)]
    first_asc, _ = await list_ids(storage, PageRequest(limit=3, order="asc"))
    first_desc, _ = await list_ids(storage, PageRequest(limit=3, order="desc"))

    late = [a.id for a in await insert_assistants(storage, 2)]

    second_asc = await list_ids(storage, PageRequest(limit=3, order="asc", after=first_asc[-1]))
    third_asc = await list_ids(storage, PageRequest(limit=3, order="asc", after=made[5]))
    rest_desc = await list_ids(storage, PageRequest(limit=3, order="desc", after=first_desc[-1]))
    assert first_asc == made[:3]
    assert second_asc == (made[3:], True)
    assert third_asc == (late, False)
    # Newest first, the late items land ahead of the cursor, so the walk goes on undisturbed.
    assert first_desc == made[:2:-1]
    assert rest_desc == (made[2::-1], False)


async def test_unknown_cursors_are_reported_by_field(storage: Storage) -> None:
    await insert_assistants(storage, 2)

    async with storage.read() as s:
        with pytest.raises(CursorNotFound) as after:
            await s.list_assistants(PROJECT, PageRequest(limit=5, order="asc", after="asst_gone"))
        with pytest.raises(CursorNotFound) as before:
            await s.list_assistants(PROJECT, PageRequest(limit=5, order="desc", before="asst_gone"))

    assert after.value.field == "after"
    assert before.value.field == "before"


async def insert_thread_with_messages(
    storage: Storage, count: int, run_id: str | None = None
) -> tuple[Thread, list[Message]]:
    thread = make_thread()
    messages = [make_message(thread, text=f"m{i}", run_id=run_id) for i in range(count)]
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_messages(messages)
    return thread, messages


async def test_cursors_from_another_collection_are_not_found(storage: Storage) -> None:
    thread, messages = await insert_thread_with_messages(storage, 2)
    other_thread, other_messages = await insert_thread_with_messages(storage, 2)
    run, other_run = make_run(thread, status="completed"), make_run(other_thread)
    step, other_step = make_step(run), make_step(other_run)
    async with storage.transaction() as s:
        await s.insert_run(run)
        await s.insert_run(other_run)
        await s.insert_step(step)
        await s.insert_step(other_step)

    async with storage.read() as s:
        listed = await s.list_messages(
            PROJECT, thread.id, PageRequest(limit=5, order="asc", after=messages[0].id)
        )
        assert listed.items == messages[1:]
        with pytest.raises(CursorNotFound):
            await s.list_messages(
                PROJECT, thread.id, PageRequest(limit=5, order="asc", after=other_messages[0].id)
            )
        with pytest.raises(CursorNotFound):
            await s.list_runs(
                PROJECT, thread.id, PageRequest(limit=5, order="asc", before=other_run.id)
            )
        with pytest.raises(CursorNotFound):
            await s.list_steps(
                PROJECT, run.id, PageRequest(limit=5, order="asc", after=other_step.id)
            )
        # An id of another kind is no cursor either.
        with pytest.raises(CursorNotFound):
            await s.list_runs(PROJECT, thread.id, PageRequest(limit=5, order="asc", after=step.id))


async def test_messages_can_be_listed_for_one_run(storage: Storage) -> None:
    thread = make_thread()
    run = make_run(thread, status="completed")
    plain = [make_message(thread, text=f"user{i}") for i in range(3)]
    from_run = [
        make_message(thread, text=f"run{i}", run_id=run.id, role="assistant") for i in range(3)
    ]
    interleaved = [m for pair in zip(plain, from_run, strict=True) for m in pair]
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        await s.insert_run(run)
        await s.insert_messages(interleaved)

    async with storage.read() as s:
        everything = await s.list_messages(PROJECT, thread.id, PageRequest(limit=10, order="asc"))
        first = await s.list_messages(
            PROJECT, thread.id, PageRequest(limit=2, order="desc"), run_id=run.id
        )
        rest = await s.list_messages(
            PROJECT,
            thread.id,
            PageRequest(limit=2, order="desc", after=first.items[-1].id),
            run_id=run.id,
        )
        none = await s.list_messages(
            PROJECT, thread.id, PageRequest(limit=10, order="asc"), run_id="run_other"
        )
        with pytest.raises(CursorNotFound):
            await s.list_messages(
                PROJECT,
                thread.id,
                PageRequest(limit=2, order="asc", after=plain[0].id),
                run_id=run.id,
            )

    assert everything.items == interleaved
    assert (first.items, first.has_more) == ([from_run[2], from_run[1]], True)
    assert (rest.items, rest.has_more) == ([from_run[0]], False)
    assert none.items == []


async def test_all_messages_are_oldest_first(storage: Storage) -> None:
    thread, first_batch = await insert_thread_with_messages(storage, 30)
    second_batch = [make_message(thread, text=f"late{i}") for i in range(5)]
    async with storage.transaction() as s:
        for message in second_batch:
            await s.insert_messages([message])

    async with storage.read() as s:
        assert await s.all_messages(PROJECT, thread.id) == first_batch + second_batch


async def test_runs_and_steps_list_in_creation_order(storage: Storage) -> None:
    thread = make_thread()
    runs = [make_run(thread, status="completed") for _ in range(4)]
    steps = [make_step(runs[0]) for _ in range(4)]
    async with storage.transaction() as s:
        await s.insert_thread(thread)
        for run in runs:
            await s.insert_run(run)
        for step in steps:
            await s.insert_step(step)

    async with storage.read() as s:
        run_page = await s.list_runs(PROJECT, thread.id, PageRequest(limit=3, order="desc"))
        step_page = await s.list_steps(
            PROJECT, runs[0].id, PageRequest(limit=3, order="asc", after=steps[0].id)
        )
        assert await s.all_steps(runs[0].id) == steps
        assert (await s.list_steps(PROJECT, runs[1].id, PageRequest(10, "asc"))).items == []

    assert (run_page.items, run_page.has_more) == ([runs[3], runs[2], runs[1]], True)
    assert (step_page.items, step_page.has_more) == (steps[1:], False)
