"""PostgreSQL storage: for production and for several replicas sharing one database.

asyncpg is used directly (no ORM): the queries are few and fixed, and asyncpg's prepared
statement cache makes each one a single round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from assistants_grpc.adapters.storage.migrations import load_migrations, split_statements
from assistants_grpc.adapters.storage.sql_session import Row, SqlSession, decode
from assistants_grpc.domain.models import Run
from assistants_grpc.ports.storage import (
    ActiveRunExists,
    ClaimedRun,
    StorageOutcomeUnknown,
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

# What a COMMIT cut off on its way raises: a timeout (as StorageUnavailable) or a lost connection.
_COMMIT_FAILURES: tuple[type[BaseException], ...] = (StorageUnavailable, *CONNECTION_ERRORS)

_MIGRATION_LOCK_KEY = 7_311_015_001

# How long a connection attempt, and one statement of a session, may take. The statements here
# take milliseconds; one that is not answered in seconds has lost its server (stopped, or cut
# off by the network), and the caller is better told so than left hanging.
DEFAULT_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset of a connection returned to the pool (advisory unlock, CLOSE
    ALL, UNLISTEN, RESET ALL: a round trip on every release). Sessions here change no session
    state: no SET, no LISTEN (the event hub has its own connections), no cursors, only
    transaction-scoped advisory locks. asyncpg still rolls back an open transaction first."""


@lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """Rewrites `?` placeholders into asyncpg's `$1, $2, ...`."""
    parts = sql.split("?")
    out = [parts[0]]
    for number, part in enumerate(parts[1:], start=1):
        out.append(f"${number}{part}")
    return "".join(out)


class PostgresSession(SqlSession):
    def __init__(
        self, connection: asyncpg.Connection, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self._connection = connection
        self._timeout = timeout_seconds

    async def _bounded(self, statement: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await statement
        except TimeoutError:
            # asyncpg would ask the server to cancel the statement, then roll back, each waiting
            # as long again for a server that does not answer. Dropping the connection ends
            # both at once; the pool opens a fresh one for the next session.
            self._connection.terminate()
            raise StorageUnavailable("the database did not answer in time") from None

    async def _fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return list(await self._bounded(self._connection.fetch(_numbered(sql), *args)))

    async def _fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self._bounded(self._connection.fetchrow(_numbered(sql), *args))
        return row

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status: str = await self._bounded(self._connection.execute(_numbered(sql), *args))
        except asyncpg.exceptions.UniqueViolationError as error:
            if error.constraint_name == "runs_one_active_per_thread":
                raise ActiveRunExists from error
            raise
        # The status tag ends with the row count: "UPDATE 1", "INSERT 0 1", "DELETE 3".
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def _execute_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        await self._bounded(self._connection.executemany(_numbered(sql), rows))

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
    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 2,
        max_connections: int = 20,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`timeout_seconds` bounds each connection attempt and each statement of a session:
        past it the session fails with StorageUnavailable instead of waiting on."""
        self._url = url
        self._min = min_connections
        self._max = max_connections
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        try:
            # The pool's own command timeout only guards the migrations, which may take long.
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min,
                max_size=self._max,
                command_timeout=30,
                timeout=self._timeout,
                reset=_keep_session,
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
        pool = self._pool
        try:
            # The timeout bounds the wait for a connection and, on release, its reset.
            connection = await pool.acquire(timeout=self._timeout)
        except CONNECTION_ERRORS as error:
            raise StorageUnavailable("the database is unreachable") from error
        try:
            yield connection
        except CONNECTION_ERRORS as error:
            raise StorageUnavailable("the database is unreachable") from error
        finally:
            # The session's work is done (committed, or failed above): a connection that breaks
            # while being reset for its next user must not fail a call that succeeded. The
            # pool drops such a connection and opens another.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await pool.release(connection)

    async def ping(self) -> None:
        async with self._acquire() as connection:
            await PostgresSession(connection, self._timeout)._fetch_one("SELECT 1")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StorageSession]:
        async with self._acquire() as connection:
            yield PostgresSession(connection, self._timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StorageSession]:
        async with self._acquire() as connection:
            session = PostgresSession(connection, self._timeout)
            # BEGIN, COMMIT and ROLLBACK are bounded like every other statement.
            transaction = connection.transaction()
            await session._bounded(transaction.start())
            try:
                yield session
            except BaseException:
                if not connection.is_closed():
                    await session._bounded(transaction.rollback())
                raise
            try:
                await session._bounded(transaction.commit())
            except _COMMIT_FAILURES as error:
                # The COMMIT may have reached the server before the connection went.
                raise StorageOutcomeUnknown("the commit was cut off") from error

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool, for the PostgreSQL event channel (LISTEN/NOTIFY)."""
        if self._pool is None:
            raise StorageUnavailable("the database is closed")
        return self._pool
