"""Every storage test runs once per backend: SQLite on a file in a temporary directory, and
PostgreSQL in a database created for this test session and dropped after it (so no run sees
another run's data, and CI jobs sharing a server do not collide)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from assistants_grpc.ports.storage import Storage

from .backends import (
    POSTGRES_ADMIN_URL,
    Backend,
    PostgresBackend,
    SqliteBackend,
    unique_name,
    with_database,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(scope="session")
async def postgres_database() -> AsyncIterator[str]:
    """The URL of a new database, or a skip when no server answers (a failure in CI, which
    must really test PostgreSQL)."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.exceptions.CannotConnectNowError) as error:
        reason = f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error!r}"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    name = unique_name("assistants_test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            # FORCE: a test that failed half way may have left a connection behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    # The directory does not exist yet: creating it is part of starting.
    backend = SqliteBackend(tmp_path / "data" / "assistants.db")
    yield backend
    await backend.close_all()


@pytest.fixture
async def postgres_backend(postgres_database: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(postgres_database)
    await backend.prepare()
    yield backend
    await backend.close_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Backend:
    # Looked up by name so that SQLite tests never wait for, or skip with, PostgreSQL.
    chosen: Backend = request.getfixturevalue(f"{request.param}_backend")
    return chosen


@pytest.fixture
async def storage(backend: Backend) -> Storage:
    return await backend.open()
