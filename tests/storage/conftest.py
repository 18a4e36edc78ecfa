"""Every storage test runs once per backend: SQLite on a file in a temporary directory, and
PostgreSQL in a database created for this test session and dropped after it (so no run sees
another run's data, and CI jobs sharing a server do not collide)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistants_grpc.ports.storage import Storage

from ..support.postgres import fresh_postgres_database
from .backends import (
    Backend,
    PostgresBackend,
    SqliteBackend,
)


@pytest.fixture(scope="session")
async def postgres_database() -> AsyncIterator[str]:
    async with fresh_postgres_database("assistants_test") as url:
        yield url


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
