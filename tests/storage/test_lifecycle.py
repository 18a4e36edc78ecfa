"""Starting, migrating, restarting and closing a storage."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from assistants_grpc.adapters.storage.migrations import load_migrations
from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.ports.storage import ApiKeyRecord, Storage, StorageUnavailable

from .backends import Backend, SqliteBackend
from .factories import NOW, PROJECT, done_event, make_assistant, make_message, make_run, make_thread


async def test_migrations_apply_once_however_often_storage_starts(backend: Backend) -> None:
    # Two replicas starting side by side, then a restart.
    await asyncio.gather(backend.open(), backend.open())
    await backend.close_all()
    await backend.open()

    rows = await backend.fetch("SELECT version, name FROM schema_migrations ORDER BY version")

    assert rows == [(m.version, m.name) for m in load_migrations(backend.name)]


async def test_data_survives_a_restart(backend: Backend) -> None:
    first = await backend.open()
    assistant, thread = make_assistant(), make_thread()
    run = make_run(thread)
    message = make_message(thread)
    key = ApiKeyRecord("key_a", PROJECT, "laptop", "hash_a", NOW)
    async with first.transaction() as s:
        await s.insert_assistant(assistant)
        await s.insert_thread(thread)
        await s.insert_messages([message])
        await s.insert_run(run)
        await s.append_events([done_event(run.id, 1)])
        await s.insert_api_key(key)
    await first.close()

    second = await backend.open()

    async with second.read() as s:
        assert await s.get_assistant(PROJECT, assistant.id) == assistant
        assert await s.get_thread(PROJECT, thread.id) == thread
        assert await s.all_messages(PROJECT, thread.id) == [message]
        assert await s.active_run(PROJECT, thread.id) == run
        assert await s.read_events(run.id, 0, 10) == [done_event(run.id, 1)]
        assert await s.find_api_key("hash_a") == key


async def test_a_closed_storage_is_unavailable(storage: Storage) -> None:
    await storage.ping()

    await storage.close()

    with pytest.raises(StorageUnavailable):
        await storage.ping()
    with pytest.raises(StorageUnavailable):
        async with storage.read() as s:
            await s.get_assistant(PROJECT, "asst_x")
    with pytest.raises(StorageUnavailable):
        async with storage.transaction() as s:
            await s.insert_assistant(make_assistant())


async def test_sqlite_creates_its_directory_and_uses_wal(sqlite_backend: SqliteBackend) -> None:
    assert not sqlite_backend.path.parent.exists()

    await sqlite_backend.open()

    assert sqlite_backend.path.is_file()
    # The journal mode is kept in the file, so any later connection sees it.
    assert await sqlite_backend.fetch("PRAGMA journal_mode") == [("wal",)]


async def test_sqlite_expands_a_home_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    storage = SqliteStorage("~/state/assistants.db")

    await storage.start()
    try:
        async with storage.transaction() as s:
            await s.insert_assistant(make_assistant())
    finally:
        await storage.close()

    with closing(sqlite3.connect(tmp_path / "state" / "assistants.db")) as connection:
        assert connection.execute("SELECT COUNT(*) FROM assistants").fetchone() == (1,)
