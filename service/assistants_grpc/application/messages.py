"""Use cases of messages: create, get, list, update, delete."""

from __future__ import annotations

import msgspec

from assistants_grpc.application.context import CallContext, now
from assistants_grpc.application.paging import cursor_error, page_request
from assistants_grpc.application.threads import materialize_messages
from assistants_grpc.domain.errors import FailedPrecondition, NotFound
from assistants_grpc.domain.ids import IdPrefix, check_id
from assistants_grpc.domain.models import Message, NewMessage
from assistants_grpc.domain.validation import Violations, check_metadata, check_new_message
from assistants_grpc.ports.storage import CursorNotFound, Page, Storage, StorageSession


def active_run_refusal(thread_id: str, run_id: str, status: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"Thread '{thread_id}' already has an active run '{run_id}' ({status}); "
        "wait for it to end or cancel it first.",
        reason="THREAD_HAS_ACTIVE_RUN",
    )


class Messages:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def create(self, ctx: CallContext, thread_id: str, draft: NewMessage) -> Message:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        v = Violations()
        check_new_message(v, "", draft)
        v.raise_if_any()
        (message,) = materialize_messages(ctx, thread_id, [draft], now())
        async with self._storage.transaction() as tx:
            # Locking the thread orders this write against a concurrent CreateRun.
            if await tx.get_thread(ctx.project_id, thread_id, for_update=True) is None:
                raise NotFound("thread", thread_id)
            active = await tx.active_run(ctx.project_id, thread_id)
            if active is not None:
                raise active_run_refusal(thread_id, active.id, active.status)
            await tx.insert_messages([message])
        return message

    async def _find(
        self, session: StorageSession, ctx: CallContext, thread_id: str, message_id: str
    ) -> Message:
        check_id(thread_id, IdPrefix.THREAD, "thread_id", required=False)
        check_id(message_id, IdPrefix.MESSAGE, "message_id")
        message = await session.get_message(ctx.project_id, message_id)
        if message is None or (thread_id and message.thread_id != thread_id):
            raise NotFound("message", message_id)
        return message

    async def get(self, ctx: CallContext, thread_id: str, message_id: str) -> Message:
        async with self._storage.read() as session:
            return await self._find(session, ctx, thread_id, message_id)

    async def list(
        self,
        ctx: CallContext,
        thread_id: str,
        limit: int | None,
        order: str,
        after: str,
        before: str,
        run_id: str,
    ) -> Page[Message]:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        check_id(run_id, IdPrefix.RUN, "run_id", required=False)
        page = page_request(limit, order, after, before, IdPrefix.MESSAGE)
        async with self._storage.read() as session:
            listed: Page[Message] | None = None
            bad_cursor: CursorNotFound | None = None
            try:
                listed = await session.list_messages(
                    ctx.project_id, thread_id, page, run_id=run_id or None
                )
            except CursorNotFound as error:
                bad_cursor = error
            # Messages on the page prove the thread exists and is the caller's; only an empty
            # page or a bad cursor needs the thread looked up, to answer NOT_FOUND first.
            if (listed is None or not listed.items) and await session.get_thread(
                ctx.project_id, thread_id
            ) is None:
                raise NotFound("thread", thread_id)
        if bad_cursor is not None:
            raise cursor_error(bad_cursor) from None
        assert listed is not None
        return listed

    async def update_metadata(
        self, ctx: CallContext, thread_id: str, message_id: str, metadata: dict[str, str] | None
    ) -> Message:
        """Replaces the metadata; None changes nothing and returns the message as it is."""
        v = Violations()
        check_metadata(v, "metadata", metadata or {})
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            message = await self._find(tx, ctx, thread_id, message_id)
            if metadata is None:
                return message
            updated = msgspec.structs.replace(message, metadata=metadata)
            await tx.update_message(updated)
        return updated

    async def delete(self, ctx: CallContext, thread_id: str, message_id: str) -> None:
        async with self._storage.transaction() as tx:
            message = await self._find(tx, ctx, thread_id, message_id)
            await tx.delete_message(ctx.project_id, message.id)
