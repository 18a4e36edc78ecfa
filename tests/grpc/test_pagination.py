"""Lists page as OpenAI's do: `limit` 1 to 100 (default 20), `order` (default desc), `after` and
`before` cursors, and `first_id`, `last_id`, `has_more` on every page; pages stay exact when many
objects share a creation second and when objects are added while a caller pages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from assistants.v1 import assistant_service_pb2 as apb
from assistants.v1 import message_service_pb2 as pb
from assistants.v1 import thread_service_pb2 as tpb

from ..support.stubs import Stubs
from .rich_errors import invalid_field


async def new_thread(stubs: Stubs) -> str:
    return (await stubs.threads.CreateThread(tpb.CreateThreadRequest())).thread.id


async def add_messages(stubs: Stubs, thread_id: str, count: int, *, label: str = "m") -> list[str]:
    """`count` messages added at once, so that most share their creation second."""
    responses = await asyncio.gather(
        *(
            stubs.messages.CreateMessage(
                pb.CreateMessageRequest(thread_id=thread_id, role="user", text=f"{label}{i}")
            )
            for i in range(count)
        )
    )
    return [r.message.id for r in responses]


async def walk(
    stubs: Stubs, thread_id: str, *, order: str, limit: int, backwards: bool = False
) -> list[list[str]]:
    """Every page of the list, following `after` (or `before`, starting from the far end)."""
    pages: list[list[str]] = []
    cursor = ""
    if backwards:
        # The far end: the last item of the whole list in this order.
        everything = await stubs.messages.ListMessages(
            pb.ListMessagesRequest(thread_id=thread_id, order=order, limit=100)
        )
        cursor = everything.last_id
        pages.append([everything.last_id])
    while True:
        request = pb.ListMessagesRequest(thread_id=thread_id, order=order, limit=limit)
        if backwards:
            request.before = cursor
        else:
            request.after = cursor
        page = await stubs.messages.ListMessages(request)
        ids = [m.id for m in page.data]
        assert (page.first_id, page.last_id) == ((ids[0], ids[-1]) if ids else ("", ""))
        assert len(ids) <= limit
        if ids and backwards:
            pages.insert(0, ids)
        elif ids:
            pages.append(ids)
        if not page.has_more:
            return pages
        assert len(ids) == limit, "a page short of its limit says nothing more follows"
        cursor = page.first_id if backwards else page.last_id


def flat(pages: list[list[str]]) -> list[str]:
    return [item for page in pages for item in page]


async def test_default_page_is_twenty_newest_first(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    ids = await add_messages(stubs, thread_id, 25)
    page = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id))
    assert page.object == "list"
    assert len(page.data) == 20
    assert page.has_more
    assert set(m.id for m in page.data) < set(ids)
    # Newest first: the page holds the last 20 created, whatever their creation seconds.
    full = await stubs.messages.ListMessages(
        pb.ListMessagesRequest(thread_id=thread_id, order="asc", limit=100)
    )
    assert [m.id for m in page.data] == [m.id for m in full.data][::-1][:20]
    assert not full.has_more


async def test_every_item_appears_once_in_both_orders(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    ids = await add_messages(stubs, thread_id, 23)
    ascending = flat(await walk(stubs, thread_id, order="asc", limit=5))
    descending = flat(await walk(stubs, thread_id, order="desc", limit=5))
    assert sorted(ascending) == sorted(ids)
    assert len(set(ascending)) == len(ascending)
    assert descending == ascending[::-1]


async def test_before_walks_back_to_the_start(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    await add_messages(stubs, thread_id, 12)
    forwards = flat(await walk(stubs, thread_id, order="asc", limit=5))
    backwards = flat(await walk(stubs, thread_id, order="asc", limit=5, backwards=True))
    assert backwards == forwards
    newest_first = flat(await walk(stubs, thread_id, order="desc", limit=4, backwards=True))
    assert newest_first == forwards[::-1]


async def test_pages_stay_exact_while_items_are_added(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    original = await add_messages(stubs, thread_id, 15, label="old")

    # Newest first: items added during the walk land before its start, so the walk sees exactly
    # the original items.
    first = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, limit=6))
    await add_messages(stubs, thread_id, 10, label="new")
    seen = [m.id for m in first.data]
    cursor, more = first.last_id, first.has_more
    while more:
        page = await stubs.messages.ListMessages(
            pb.ListMessagesRequest(thread_id=thread_id, limit=6, after=cursor)
        )
        seen += [m.id for m in page.data]
        cursor, more = page.last_id, page.has_more
    assert sorted(seen) == sorted(original)

    # Oldest first: the items added during the walk come at its end, none twice.
    first = await stubs.messages.ListMessages(
        pb.ListMessagesRequest(thread_id=thread_id, order="asc", limit=6)
    )
    added = await add_messages(stubs, thread_id, 5, label="newer")
    seen = [m.id for m in first.data]
    cursor, more = first.last_id, first.has_more
    while more:
        page = await stubs.messages.ListMessages(
            pb.ListMessagesRequest(thread_id=thread_id, order="asc", limit=6, after=cursor)
        )
        seen += [m.id for m in page.data]
        cursor, more = page.last_id, page.has_more
    assert len(seen) == len(set(seen)) == 30
    assert set(seen[-5:]) == set(added)


async def test_limit_bounds(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    ids = await add_messages(stubs, thread_id, 3)
    one = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, limit=1))
    assert [m.id for m in one.data] == [one.first_id] == [one.last_id]
    assert one.has_more
    hundred = await stubs.messages.ListMessages(
        pb.ListMessagesRequest(thread_id=thread_id, limit=100)
    )
    assert sorted(m.id for m in hundred.data) == sorted(ids)
    assert not hundred.has_more
    for limit in (0, -1, 101):
        await invalid_field(
            stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, limit=limit)),
            "limit",
        )
        await invalid_field(
            stubs.assistants.ListAssistants(apb.ListAssistantsRequest(limit=limit)), "limit"
        )


async def test_an_empty_list_has_no_ids(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    page = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id))
    assert (list(page.data), page.first_id, page.last_id, page.has_more) == ([], "", "", False)


@pytest.mark.parametrize(
    ("fields", "field_path"),
    [
        ({"order": "newest"}, "order"),
        ({"after": "asst_abc"}, "after"),
        ({"before": "thread_abc"}, "before"),
        ({"after": "msg_unknown"}, "after"),
        ({"before": "msg_unknown"}, "before"),
        ({"after": "msg_a", "before": "msg_b"}, "before"),
    ],
)
async def test_bad_list_parameters_name_their_field(
    stubs: Stubs, fields: dict[str, Any], field_path: str
) -> None:
    thread_id = await new_thread(stubs)
    await invalid_field(
        stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, **fields)),
        field_path,
    )


async def test_a_cursor_from_another_list_is_refused(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    other_thread_id = await new_thread(stubs)
    (foreign_id,) = await add_messages(stubs, other_thread_id, 1)
    await invalid_field(
        stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, after=foreign_id)),
        "after",
    )


async def test_assistants_page_the_same_way(stubs: Stubs) -> None:
    created = await asyncio.gather(
        *(
            stubs.assistants.CreateAssistant(
                apb.CreateAssistantRequest(model="scripted-echo", name=f"a{i}")
            )
            for i in range(7)
        )
    )
    ids = {r.assistant.id for r in created}
    seen: list[str] = []
    cursor, more = "", True
    while more:
        page = await stubs.assistants.ListAssistants(
            apb.ListAssistantsRequest(limit=3, order="asc", after=cursor)
        )
        seen += [a.id for a in page.data]
        cursor, more = page.last_id, page.has_more
    assert set(seen) == ids
    assert len(seen) == len(ids)
    previous = await stubs.assistants.ListAssistants(
        apb.ListAssistantsRequest(limit=3, order="asc", before=seen[4])
    )
    assert [a.id for a in previous.data] == seen[1:4]
    assert previous.has_more
