"""SQLite storage: the embedded default, one file in WAL mode, no server to run.

Statements run directly on the event loop's thread rather than in a worker thread: in WAL mode
with `synchronous=NORMAL` a commit does not wait for the disk, each statement here takes tens of
microseconds, and a thread hop per statement would cost more CPU than it saves. One connection
serves the process, and a lock gives each session the connection to itself, which is also
SQLite's own model (one writer at a time).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from assistants_grpc.adapters.storage.migrations import load_migrations, split_statements
from assistants_grpc.adapters.storage.sql_session import Row, SqlSession, decode
from assistants_grpc.domain.models import Run
from assistants_grpc.ports.storage import (
    ActiveRunExists,
    ClaimedRun,
    StorageSession,
    StorageUnavailable,
)


class SqliteSession(SqlSession):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def _fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._connection.execute(sql, args).fetchall()
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(str(error)) from error

    async def _fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        try:
            row: Row | None = self._connection.execute(sql, args).fetchone()
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(str(error)) from error
        return row

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            return self._connection.execute(sql, args).rowcount
        except sqlite3.IntegrityError as error:
            if "runs.thread_id" in str(error):
                raise ActiveRunExists from error
            raise
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(str(error)) from error

    async def _execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        try:
            self._connection.executemany(sql, rows)
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(str(error)) from error

    async def claim_runs(
        self, owner: str, now: int, lease_seconds: int, limit: int
    ) -> list[ClaimedRun]:
        # The session holds SQLite's write lock, so select-then-update cannot race.
        rows = await self._fetch_all(
            f"SELECT id, attempt, data FROM runs WHERE {self._CLAIMABLE} ORDER BY seq LIMIT ?",
            (now, limit),
        )
        claims: list[ClaimedRun] = []
        for run_id, attempt, data in rows:
            await self._execute(
                "UPDATE runs SET lease_owner = ?, lease_expires_at = ?, attempt = ? WHERE id = ?",
                (owner, now + lease_seconds, attempt + 1, run_id),
            )
            claims.append(ClaimedRun(run=decode(bytes(data), Run), attempt=attempt + 1))
        return claims


def _prepare_file(path: str) -> str:
    """The path to open, its directory created; sqlite3 itself would not expand `~`."""
    if path == ":memory:":
        return path
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    return str(file)


class SqliteStorage:
    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        # Autocommit mode: sessions issue BEGIN/COMMIT themselves.
        connection = sqlite3.connect(
            _prepare_file(self._path), isolation_level=None, check_same_thread=False, timeout=30
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        self._connection = connection
        self._migrate(connection)

    def _migrate(self, connection: sqlite3.Connection) -> None:
        # One write transaction for the whole check-and-apply: two processes starting on the
        # same file at once apply each migration exactly once.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            applied = {
                row[0] for row in connection.execute("SELECT version FROM schema_migrations")
            }
            for migration in load_migrations("sqlite"):
                if migration.version in applied:
                    continue
                for statement in split_statements(migration.sql):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, strftime('%s', 'now'))",
                    (migration.version, migration.name),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._connection is not None:
            async with self._lock:
                self._connection.close()
                self._connection = None

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageUnavailable("the database is closed")
        return self._connection

    async def ping(self) -> None:
        async with self._lock:
            try:
                self._require_connection().execute("SELECT 1")
            except sqlite3.Error as error:
                raise StorageUnavailable(str(error)) from error

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StorageSession]:
        async with self._lock:
            yield SqliteSession(self._require_connection())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StorageSession]:
        async with self._lock:
            connection = self._require_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteSession(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
