"""Use cases of threads: create (with first messages), get, update, delete."""

from __future__ import annotations

from typing import Any

import msgspec

from assistants_grpc.application.context import CallContext, now
from assistants_grpc.domain.errors import FailedPrecondition, NotFound
from assistants_grpc.domain.ids import IdPrefix, check_id, new_id
from assistants_grpc.domain.models import Message, NewMessage, Thread, ToolResources
from assistants_grpc.domain.validation import (
    Violations,
    check_metadata,
    check_new_messages,
    check_tool_resources,
)
from assistants_grpc.ports.storage import Storage


def materialize_messages(
    ctx: CallContext, thread_id: str, drafts: list[NewMessage], created_at: int
) -> list[Message]:
    """Messages stored from caller drafts: completed at once, as OpenAI records them."""
    return [
        Message(
            id=new_id(IdPrefix.MESSAGE),
            project_id=ctx.project_id,
            thread_id=thread_id,
            created_at=created_at,
            role=draft.role,
            content=draft.content,
            attachments=draft.attachments,
            metadata=draft.metadata,
            completed_at=created_at,
        )
        for draft in drafts
    ]


def new_thread(
    ctx: CallContext,
    messages: list[NewMessage],
    tool_resources: ToolResources | None,
    metadata: dict[str, str],
    *,
    field_prefix: str = "",
) -> tuple[Thread, list[Message]]:
    """A validated new thread and its first messages, not yet stored."""
    v = Violations()
    check_new_messages(v, f"{field_prefix}messages", messages)
    check_tool_resources(v, f"{field_prefix}tool_resources", tool_resources)
    check_metadata(v, f"{field_prefix}metadata", metadata)
    v.raise_if_any()
    created_at = now()
    thread = Thread(
        id=new_id(IdPrefix.THREAD),
        project_id=ctx.project_id,
        created_at=created_at,
        tool_resources=tool_resources,
        metadata=metadata,
    )
    return thread, materialize_messages(ctx, thread.id, messages, created_at)


class Threads:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def create(
        self,
        ctx: CallContext,
        messages: list[NewMessage],
        tool_resources: ToolResources | None,
        metadata: dict[str, str],
    ) -> Thread:
        thread, first_messages = new_thread(ctx, messages, tool_resources, metadata)
        async with self._storage.transaction() as tx:
            await tx.insert_thread(thread)
            await tx.insert_messages(first_messages)
        return thread

    async def get(self, ctx: CallContext, thread_id: str) -> Thread:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        async with self._storage.read() as session:
            thread = await session.get_thread(ctx.project_id, thread_id)
        if thread is None:
            raise NotFound("thread", thread_id)
        return thread

    async def update(self, ctx: CallContext, thread_id: str, changes: dict[str, Any]) -> Thread:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        v = Violations()
        if "metadata" in changes:
            check_metadata(v, "metadata", changes["metadata"])
        if "tool_resources" in changes:
            check_tool_resources(v, "tool_resources", changes["tool_resources"])
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            current = await tx.get_thread(ctx.project_id, thread_id, for_update=True)
            if current is None:
                raise NotFound("thread", thread_id)
            updated = msgspec.structs.replace(current, **changes)
            await tx.update_thread(updated)
        return updated

    async def delete(self, ctx: CallContext, thread_id: str) -> None:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        async with self._storage.transaction() as tx:
            if await tx.get_thread(ctx.project_id, thread_id, for_update=True) is None:
                raise NotFound("thread", thread_id)
            active = await tx.active_run(ctx.project_id, thread_id)
            if active is not None:
                raise FailedPrecondition(
                    f"Thread '{thread_id}' has an active run '{active.id}' ({active.status}); "
                    "cancel it or wait for it to end before deleting the thread.",
                    reason="THREAD_HAS_ACTIVE_RUN",
                )
            await tx.delete_thread(ctx.project_id, thread_id)
