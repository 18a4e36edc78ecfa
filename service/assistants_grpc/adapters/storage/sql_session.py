"""The storage session in SQL shared by the SQLite and PostgreSQL backends.

Queries are written once with `?` placeholders; a backend supplies the four primitives
(`_fetch_all`, `_fetch_one`, `_execute`, `_execute_many`) and rewrites placeholders if its
driver needs another style. What the two databases do differently (claiming work under
concurrency) is left to the subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from assistants_grpc.domain.models import (
    Assistant,
    Message,
    Run,
    RunEvent,
    RunStep,
    Thread,
    payload_type,
)
from assistants_grpc.ports.storage import (
    ApiKeyRecord,
    ClaimedRun,
    CursorNotFound,
    Page,
    PageRequest,
)

T = TypeVar("T")
Row = Sequence[Any]

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

ACTIVE_STATUSES = "('queued', 'in_progress', 'requires_action', 'cancelling')"


def encode(obj: msgspec.Struct) -> bytes:
    return _encoder.encode(obj)


def decode(data: bytes, kind: type[T]) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    result: T = decoder.decode(data)
    return result


class SqlSession(ABC):
    """Implements the StorageSession port over four SQL primitives."""

    @abstractmethod
    async def _fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def _fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Runs a statement and returns the number of rows it changed."""

    @abstractmethod
    async def _execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None: ...

    # --- shared helpers ---------------------------------------------------------------------

    async def _get(self, table: str, kind: type[T], project_id: str, object_id: str) -> T | None:
        row = await self._fetch_one(
            f"SELECT data FROM {table} WHERE id = ? AND project_id = ?", (object_id, project_id)
        )
        return None if row is None else decode(bytes(row[0]), kind)

    async def _page(
        self,
        table: str,
        kind: type[T],
        scope_sql: str,
        scope_args: tuple[Any, ...],
        page: PageRequest,
    ) -> Page[T]:
        """A page ordered by `seq`, which never ties, so cursors neither skip nor repeat."""
        descending = page.order == "desc"
        cursor_id = page.after or page.before
        cursor_sql = ""
        args: tuple[Any, ...] = scope_args
        # Walking "before" the cursor means walking the other way and flipping the result.
        forward = page.before is None
        newest_first = descending if forward else not descending
        if cursor_id is not None:
            row = await self._fetch_one(
                f"SELECT seq FROM {table} WHERE id = ? AND {scope_sql}", (cursor_id, *scope_args)
            )
            if row is None:
                raise CursorNotFound("after" if page.after else "before")
            cursor_sql = " AND seq < ?" if newest_first else " AND seq > ?"
            args = (*args, row[0])
        rows = await self._fetch_all(
            f"SELECT data FROM {table} WHERE {scope_sql}{cursor_sql} "
            f"ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?",
            (*args, page.limit + 1),
        )
        has_more = len(rows) > page.limit
        items = [decode(bytes(r[0]), kind) for r in rows[: page.limit]]
        if not forward:
            items.reverse()
        return Page(items=items, has_more=has_more)

    # --- assistants -------------------------------------------------------------------------

    async def insert_assistant(self, assistant: Assistant) -> None:
        await self._execute(
            "INSERT INTO assistants (id, project_id, created_at, data) VALUES (?, ?, ?, ?)",
            (assistant.id, assistant.project_id, assistant.created_at, encode(assistant)),
        )

    async def get_assistant(self, project_id: str, assistant_id: str) -> Assistant | None:
        return await self._get("assistants", Assistant, project_id, assistant_id)

    async def list_assistants(self, project_id: str, page: PageRequest) -> Page[Assistant]:
        return await self._page("assistants", Assistant, "project_id = ?", (project_id,), page)

    async def update_assistant(self, assistant: Assistant) -> None:
        await self._execute(
            "UPDATE assistants SET data = ? WHERE id = ? AND project_id = ?",
            (encode(assistant), assistant.id, assistant.project_id),
        )

    async def delete_assistant(self, project_id: str, assistant_id: str) -> bool:
        changed = await self._execute(
            "DELETE FROM assistants WHERE id = ? AND project_id = ?", (assistant_id, project_id)
        )
        return changed > 0

    # --- threads ----------------------------------------------------------------------------

    async def insert_thread(self, thread: Thread) -> None:
        await self._execute(
            "INSERT INTO threads (id, project_id, created_at, data) VALUES (?, ?, ?, ?)",
            (thread.id, thread.project_id, thread.created_at, encode(thread)),
        )

    async def get_thread(
        self, project_id: str, thread_id: str, *, for_update: bool = False
    ) -> Thread | None:
        lock = self._row_lock_clause() if for_update else ""
        row = await self._fetch_one(
            f"SELECT data FROM threads WHERE id = ? AND project_id = ?{lock}",
            (thread_id, project_id),
        )
        return None if row is None else decode(bytes(row[0]), Thread)

    def _row_lock_clause(self) -> str:
        """SQL appended to a SELECT to lock its rows; SQLite locks the whole database instead."""
        return ""

    async def update_thread(self, thread: Thread) -> None:
        await self._execute(
            "UPDATE threads SET data = ? WHERE id = ? AND project_id = ?",
            (encode(thread), thread.id, thread.project_id),
        )

    async def delete_thread(self, project_id: str, thread_id: str) -> bool:
        changed = await self._execute(
            "DELETE FROM threads WHERE id = ? AND project_id = ?", (thread_id, project_id)
        )
        if not changed:
            return False
        await self._execute(
            "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE thread_id = ?)",
            (thread_id,),
        )
        for table in ("run_steps", "runs", "messages"):
            await self._execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))
        return True

    # --- messages ---------------------------------------------------------------------------

    async def insert_messages(self, messages: list[Message]) -> None:
        if not messages:
            return
        await self._execute_many(
            "INSERT INTO messages (id, project_id, thread_id, run_id, created_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (m.id, m.project_id, m.thread_id, m.run_id, m.created_at, encode(m))
                for m in messages
            ],
        )

    async def get_message(self, project_id: str, message_id: str) -> Message | None:
        return await self._get("messages", Message, project_id, message_id)

    async def list_messages(
        self, project_id: str, thread_id: str, page: PageRequest, *, run_id: str | None = None
    ) -> Page[Message]:
        if run_id:
            return await self._page(
                "messages",
                Message,
                "thread_id = ? AND project_id = ? AND run_id = ?",
                (thread_id, project_id, run_id),
                page,
            )
        return await self._page(
            "messages", Message, "thread_id = ? AND project_id = ?", (thread_id, project_id), page
        )

    async def all_messages(self, project_id: str, thread_id: str) -> list[Message]:
        rows = await self._fetch_all(
            "SELECT data FROM messages WHERE thread_id = ? AND project_id = ? ORDER BY seq",
            (thread_id, project_id),
        )
        return [decode(bytes(r[0]), Message) for r in rows]

    async def update_message(self, message: Message) -> None:
        await self._execute(
            "UPDATE messages SET data = ? WHERE id = ? AND project_id = ?",
            (encode(message), message.id, message.project_id),
        )

    async def delete_message(self, project_id: str, message_id: str) -> bool:
        changed = await self._execute(
            "DELETE FROM messages WHERE id = ? AND project_id = ?", (message_id, project_id)
        )
        return changed > 0

    # --- runs -------------------------------------------------------------------------------

    async def insert_run(self, run: Run) -> None:
        await self._execute(
            "INSERT INTO runs (id, project_id, thread_id, status, created_at, expires_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.project_id,
                run.thread_id,
                run.status,
                run.created_at,
                run.expires_at,
                encode(run),
            ),
        )

    async def get_run(
        self, project_id: str, run_id: str, *, for_update: bool = False
    ) -> Run | None:
        lock = self._row_lock_clause() if for_update else ""
        row = await self._fetch_one(
            f"SELECT data FROM runs WHERE id = ? AND project_id = ?{lock}", (run_id, project_id)
        )
        return None if row is None else decode(bytes(row[0]), Run)

    async def lock_run_for_worker(self, run_id: str) -> tuple[str, int, int] | None:
        row = await self._fetch_one(
            "SELECT status, attempt, (SELECT COALESCE(MAX(sequence_number), 0) FROM run_events "
            f"WHERE run_events.run_id = runs.id) FROM runs WHERE id = ?{self._row_lock_clause()}",
            (run_id,),
        )
        return None if row is None else (str(row[0]), int(row[1]), int(row[2]))

    async def get_run_for_worker(self, run_id: str) -> tuple[Run, int] | None:
        row = await self._fetch_one(
            f"SELECT data, attempt FROM runs WHERE id = ?{self._row_lock_clause()}", (run_id,)
        )
        return None if row is None else (decode(bytes(row[0]), Run), int(row[1]))

    async def get_run_any_project(self, run_id: str) -> Run | None:
        row = await self._fetch_one("SELECT data FROM runs WHERE id = ?", (run_id,))
        return None if row is None else decode(bytes(row[0]), Run)

    async def list_runs(self, project_id: str, thread_id: str, page: PageRequest) -> Page[Run]:
        return await self._page(
            "runs", Run, "thread_id = ? AND project_id = ?", (thread_id, project_id), page
        )

    async def active_run(self, project_id: str, thread_id: str) -> Run | None:
        row = await self._fetch_one(
            f"SELECT data FROM runs WHERE thread_id = ? AND project_id = ? "
            f"AND status IN {ACTIVE_STATUSES}",
            (thread_id, project_id),
        )
        return None if row is None else decode(bytes(row[0]), Run)

    async def update_run(
        self, run: Run, *, fence: ClaimedRun | None = None, release_lease: bool = False
    ) -> bool:
        release = ", lease_owner = NULL, lease_expires_at = 0" if release_lease else ""
        sql = (
            f"UPDATE runs SET data = ?, status = ?, expires_at = ?{release} "
            "WHERE id = ? AND project_id = ?"
        )
        args: tuple[Any, ...] = (encode(run), run.status, run.expires_at, run.id, run.project_id)
        if fence is not None:
            sql += " AND attempt = ?"
            args = (*args, fence.attempt)
            # A worker only moves runs it executes. A cancel requested meanwhile (status
            # `cancelling`) must not be overwritten by its progress: the refused write is how
            # the worker learns of it, and only the move to `cancelled` may follow.
            if run.status == "cancelled":
                sql += " AND status IN ('queued', 'in_progress', 'cancelling')"
            else:
                sql += " AND status IN ('queued', 'in_progress')"
        return await self._execute(sql, args) > 0

    # --- run steps --------------------------------------------------------------------------

    async def insert_step(self, step: RunStep) -> None:
        await self._execute(
            "INSERT INTO run_steps (id, project_id, run_id, thread_id, created_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (step.id, step.project_id, step.run_id, step.thread_id, step.created_at, encode(step)),
        )

    async def update_step(self, step: RunStep) -> None:
        await self._execute(
            "UPDATE run_steps SET data = ? WHERE id = ? AND project_id = ?",
            (encode(step), step.id, step.project_id),
        )

    async def get_step(self, project_id: str, step_id: str) -> RunStep | None:
        return await self._get("run_steps", RunStep, project_id, step_id)

    async def list_steps(self, project_id: str, run_id: str, page: PageRequest) -> Page[RunStep]:
        return await self._page(
            "run_steps", RunStep, "run_id = ? AND project_id = ?", (run_id, project_id), page
        )

    async def all_steps(self, run_id: str) -> list[RunStep]:
        rows = await self._fetch_all(
            "SELECT data FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [decode(bytes(r[0]), RunStep) for r in rows]

    # --- run events -------------------------------------------------------------------------

    async def append_events(self, events: list[RunEvent]) -> None:
        if not events:
            return
        await self._execute_many(
            "INSERT INTO run_events (run_id, sequence_number, event, data) VALUES (?, ?, ?, ?)",
            [(e.run_id, e.sequence_number, e.event, encode(e.data)) for e in events],
        )

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[RunEvent]:
        rows = await self._fetch_all(
            "SELECT sequence_number, event, data FROM run_events "
            "WHERE run_id = ? AND sequence_number > ? ORDER BY sequence_number LIMIT ?",
            (run_id, after_sequence, limit),
        )
        return [
            RunEvent(
                run_id=run_id,
                sequence_number=int(r[0]),
                event=str(r[1]),
                data=decode(bytes(r[2]), payload_type(str(r[1]))),
            )
            for r in rows
        ]

    async def last_sequence_number(self, run_id: str) -> int:
        row = await self._fetch_one(
            "SELECT MAX(sequence_number) FROM run_events WHERE run_id = ?", (run_id,)
        )
        return int(row[0]) if row is not None and row[0] is not None else 0

    # --- the run queue ----------------------------------------------------------------------

    _CLAIMABLE = (
        "status IN ('queued', 'in_progress', 'cancelling') "
        "AND (lease_owner IS NULL OR lease_expires_at < ?)"
    )

    async def renew_leases(
        self, owner: str, claims: list[ClaimedRun], now: int, lease_seconds: int
    ) -> set[str]:
        lost: set[str] = set()
        for claim in claims:
            changed = await self._execute(
                "UPDATE runs SET lease_expires_at = ? "
                "WHERE id = ? AND lease_owner = ? AND attempt = ?",
                (now + lease_seconds, claim.run.id, owner, claim.attempt),
            )
            if not changed:
                lost.add(claim.run.id)
        return lost

    async def release_run(self, claim: ClaimedRun, owner: str) -> None:
        await self._execute(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = 0 "
            "WHERE id = ? AND lease_owner = ? AND attempt = ?",
            (claim.run.id, owner, claim.attempt),
        )

    async def runs_past_expiry(self, now: int, limit: int) -> list[Run]:
        rows = await self._fetch_all(
            "SELECT data FROM runs WHERE status = 'requires_action' AND expires_at < ? "
            "ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [decode(bytes(r[0]), Run) for r in rows]

    # --- API keys ---------------------------------------------------------------------------

    async def insert_api_key(self, record: ApiKeyRecord) -> None:
        await self._execute(
            "INSERT INTO api_keys (id, project_id, name, key_hash, created_at, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.project_id,
                record.name,
                record.key_hash,
                record.created_at,
                record.revoked_at,
            ),
        )

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = await self._fetch_one(
            "SELECT id, project_id, name, key_hash, created_at, revoked_at FROM api_keys "
            "WHERE key_hash = ?",
            (key_hash,),
        )
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._fetch_all(
            "SELECT id, project_id, name, key_hash, created_at, revoked_at FROM api_keys "
            "ORDER BY created_at, id"
        )
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        changed = await self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, key_id),
        )
        return changed > 0


def _api_key(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=str(row[0]),
        project_id=str(row[1]),
        name=str(row[2]),
        key_hash=str(row[3]),
        created_at=int(row[4]),
        revoked_at=None if row[5] is None else int(row[5]),
    )
