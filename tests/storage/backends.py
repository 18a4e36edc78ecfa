"""The databases the storage suite runs against, each able to open several storages on the
same data (a restart, or another replica)."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from assistants_grpc.adapters.storage.postgres import PostgresStorage
from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.ports.storage import Storage

from ..support.postgres import unique_name, with_database


class Backend(ABC):
    name: str
    # Whether two transactions can be open at once: SQLite hands out its one connection in turn.
    concurrent_transactions: bool
    # What a broken uniqueness rule surfaces as; the port leaves it to the backend.
    integrity_errors: tuple[type[Exception], ...]

    def __init__(self) -> None:
        self._opened: list[Storage] = []

    @abstractmethod
    def create(self) -> Storage:
        """A new, not yet started storage on this test's data."""

    async def open(self) -> Storage:
        storage = self.create()
        await storage.start()
        self._opened.append(storage)
        return storage

    async def close_all(self) -> None:
        for storage in self._opened:
            await storage.close()

    @abstractmethod
    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query run on this test's data outside the storage under test."""


class SqliteBackend(Backend):
    name = "sqlite"
    concurrent_transactions = False
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def create(self) -> SqliteStorage:
        return SqliteStorage(str(self.path))

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as connection:
            return list(connection.execute(sql).fetchall())


class PostgresBackend(Backend):
    """One schema of the session's database, so that every test starts from an empty one and
    applies the migrations itself."""

    name = "postgres"
    concurrent_transactions = True
    integrity_errors = (asyncpg.exceptions.UniqueViolationError,)

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.schema = unique_name("test")
        self.database_url = database_url
        self.url = with_database(
            database_url, urlsplit(database_url).path.lstrip("/"), search_path=self.schema
        )

    async def prepare(self) -> None:
        connection = await asyncpg.connect(self.database_url)
        try:
            await connection.execute(f"CREATE SCHEMA {self.schema}")
        finally:
            await connection.close()

    def create(self) -> PostgresStorage:
        return PostgresStorage(self.url, min_connections=1, max_connections=20)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()
