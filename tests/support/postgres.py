"""PostgreSQL for tests: a fresh database per test module or session, dropped afterwards.

Without a server the tests that need one are skipped locally; under CI they fail instead,
since CI must really test PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "ASSISTANTS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def with_database(url: str, database: str, **settings: str) -> str:
    """`url` pointed at another database; asyncpg sends unknown query parameters to the server
    as settings, which is how a test confines itself to a schema."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *settings.items()])
    return urlunsplit(parts._replace(path=f"/{database}", query=query))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@asynccontextmanager
async def fresh_postgres_database(prefix: str) -> AsyncIterator[str]:
    """The URL of a new, empty database named after `prefix`; skips (or fails in CI) when no
    server answers."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.exceptions.CannotConnectNowError) as error:
        reason = f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error!r}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    name = unique_name(prefix)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            # FORCE: a server killed with -9, or a test that failed half way, may leave
            # sessions behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
