"""Where PostgreSQL listens (for the proxy that cuts it off), and reads of what the service
stored, made beside the service rather than through it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg

from ..support.postgres import POSTGRES_ADMIN_URL


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
