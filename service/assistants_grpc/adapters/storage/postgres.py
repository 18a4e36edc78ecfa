"""PostgreSQL storage: for production and for several replicas sharing one database.

asyncpg is used directly (no ORM): the queries are few and fixed, and asyncpg's prepared
statement cache makes each one a single round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from assistants_grpc.adapters.storage.migrations import load_migrations, split_statements
from assistants_grpc.adapters.storage.sql_session import Row, SqlSession, decode
from assistants_grpc.domain.models import Run
from assistants_grpc.ports.storage import (
    ActiveRunExists,
    ClaimedRun,
    StorageSession,
    StorageUnavailable,
)

# Errors that mean "the database is not there right now", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
)

_MIGRATION_LOCK_KEY = 7_311_015_001


@lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """Rewrites `?` placeholders into asyncpg's `$1, $2, ...`."""
    parts = sql.split("?")
    out = [parts[0]]
    for number, part in enumerate(parts[1:], start=1):
        out.append(f"${number}{part}")
    return "".join(out)


class PostgresSession(SqlSession):
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def _fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(await self._connection.fetch(_numbered(sql), *args))

    async def _fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._connection.fetchrow(_numbered(sql), *args)
        return row

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status: str = await self._connection.execute(_numbered(sql), *args)
        except asyncpg.exceptions.UniqueViolationError as error:
            if error.constraint_name == "runs_one_active_per_thread":
                raise ActiveRunExists from error
            raise
        # The status tag ends with the row count: "UPDATE 1", "INSERT 0 1", "DELETE 3".
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def _execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        await self._connection.executemany(_numbered(sql), rows)

    def _row_lock_clause(self) -> str:
        return " FOR UPDATE"

    async def claim_runs(
        self, owner: str, now: int, lease_seconds: int, limit: int
    ) -> list[ClaimedRun]:
        # SKIP LOCKED lets replicas claim side by side without waiting on each other; the
        # bumped attempt number fences out a previous owner that is still running.
        rows = await self._fetch_all(
            "UPDATE runs SET lease_owner = ?, lease_expires_at = ?, attempt = attempt + 1 "
            "WHERE seq IN (SELECT seq FROM runs WHERE "
            f"{self._CLAIMABLE} ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED) "
            "RETURNING attempt, data",
            (owner, now + lease_seconds, now, limit),
        )
        return [ClaimedRun(run=decode(bytes(r[1]), Run), attempt=int(r[0])) for r in rows]


class PostgresStorage:
    def __init__(self, url: str, *, min_connections: int = 2, max_connections: int = 20) -> None:
        self._url = url
        self._min = min_connections
        self._max = max_connections
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._url, min_size=self._min, max_size=self._max, command_timeout=30
            )
        except CONNECTION_ERRORS as error:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {error}") from error
        await self._migrate()

    async def _migrate(self) -> None:
        async with self._acquire() as connection, connection.transaction():
            # Replicas starting together must not apply the same migration twice.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            applied = {
                r[0] for r in await connection.fetch("SELECT version FROM schema_migrations")
            }
            for migration in load_migrations("postgres"):
                if migration.version in applied:
                    continue
                for statement in split_statements(migration.sql):
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, "
                    "EXTRACT(EPOCH FROM now())::BIGINT)",
                    migration.version,
                    migration.name,
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StorageUnavailable("the database is closed")
        try:
            async with self._pool.acquire() as connection:
                yield connection
        except CONNECTION_ERRORS as error:
            raise StorageUnavailable("the database is unreachable") from error

    async def ping(self) -> None:
        async with self._acquire() as connection:
            await connection.fetchval("SELECT 1")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StorageSession]:
        async with self._acquire() as connection:
            yield PostgresSession(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StorageSession]:
        async with self._acquire() as connection, connection.transaction():
            yield PostgresSession(connection)

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool, for the PostgreSQL event channel (LISTEN/NOTIFY)."""
        if self._pool is None:
            raise StorageUnavailable("the database is closed")
        return self._pool
