"""PostgreSQL databases made for one test module and dropped after it, and reads of what the
service stored, made beside the service rather than through it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from ..storage.backends import POSTGRES_ADMIN_URL, unique_name, with_database


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@asynccontextmanager
async def fresh_postgres_database(prefix: str) -> AsyncIterator[str]:
    """The URL of a new database; a skip when no server answers, except in CI where it fails
    (the fault tests must really run against PostgreSQL there)."""
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
            # FORCE: a server killed with -9, or cut off by the proxy, may leave sessions behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def postgres_address() -> tuple[str, int]:
    """Where the PostgreSQL server listens, for a proxy to forward to."""
    parts = urlsplit(POSTGRES_ADMIN_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def through_port(database_url: str, port: int) -> str:
    """`database_url` reached through 127.0.0.1:`port` instead."""
    parts = urlsplit(database_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows
    finally:
        await connection.close()
