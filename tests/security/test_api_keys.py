"""The API key use cases: keys are random, stored hashed, bound to a project, cached briefly,
and revocation wins within the cache's bound."""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.application.api_keys import KEY_PREFIX, ApiKeys
from assistants_grpc.application.context import DEFAULT_PROJECT
from assistants_grpc.domain.errors import InvalidArgument, NotFound, Unauthenticated
from assistants_grpc.ports.storage import Storage, StorageSession


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStorage:
    """Counts read sessions, to see which authentications reached the database."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.reads = 0

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def ping(self) -> None:
        await self._inner.ping()

    def read(self) -> AbstractAsyncContextManager[StorageSession]:
        self.reads += 1
        return self._inner.read()

    def transaction(self) -> AbstractAsyncContextManager[StorageSession]:
        return self._inner.transaction()


def _database_bytes(folder: Path) -> bytes:
    """The database file with its write-ahead log, as an attacker copying them would see."""
    return b"".join(p.read_bytes() for p in folder.glob("keys.db*"))


async def _refusal(keys: ApiKeys, secret: str | None) -> str:
    with pytest.raises(Unauthenticated) as raised:
        await keys.authenticate(secret)
    return raised.value.reason


async def test_a_key_is_random_prefixed_and_only_its_hash_is_stored(
    storage: SqliteStorage, tmp_path: Path
) -> None:
    keys = ApiKeys(storage, always_required=False)
    first = await keys.create("acme", "ci")
    second = await keys.create("acme")

    assert first.secret.startswith(KEY_PREFIX)
    assert first.secret != second.secret
    # 32 random bytes in URL-safe base64: 43 characters after the prefix.
    assert len(first.secret) == len(KEY_PREFIX) + 43
    assert first.record.key_hash == hashlib.sha256(first.secret.encode()).hexdigest()
    assert first.record.id.startswith("key_")
    # Keys created in the same second list in id order: compare without order.
    listed = await keys.list()
    assert {(k.id, k.project_id, k.name, k.revoked_at) for k in listed} == {
        (first.record.id, "acme", "ci", None),
        (second.record.id, "acme", "", None),
    }
    await storage.close()
    stored = _database_bytes(tmp_path)
    assert first.record.key_hash.encode() in stored
    assert first.secret.encode() not in stored
    await storage.start()


async def test_a_key_authenticates_as_its_project(storage: SqliteStorage) -> None:
    keys = ApiKeys(storage, always_required=False)
    acme = await keys.create("acme")
    globex = await keys.create("globex")

    assert await keys.authenticate(acme.secret) == "acme"
    assert await keys.authenticate(globex.secret) == "globex"
    assert await _refusal(keys, acme.secret + "x") == "API_KEY_INVALID"
    assert await _refusal(keys, "sk-other-" + acme.secret[len(KEY_PREFIX) :]) == "API_KEY_INVALID"
    assert await _refusal(keys, KEY_PREFIX + "a" * 500) == "API_KEY_INVALID"
    assert await _refusal(keys, None) == "API_KEY_MISSING"


async def test_without_keys_calls_are_open_unless_keys_are_always_required(
    storage: SqliteStorage,
) -> None:
    assert await ApiKeys(storage, always_required=False).authenticate(None) == DEFAULT_PROJECT
    assert await _refusal(ApiKeys(storage, always_required=True), None) == "API_KEY_MISSING"
    # A presented key is checked even while keys are optional.
    open_keys = ApiKeys(storage, always_required=False)
    assert await _refusal(open_keys, KEY_PREFIX + "unknown") == "API_KEY_INVALID"


async def test_a_key_created_elsewhere_closes_the_open_service_within_the_bound(
    storage: SqliteStorage,
) -> None:
    clock = Clock()
    server = ApiKeys(storage, always_required=False, cache_seconds=5, clock=clock)
    command_line = ApiKeys(storage, always_required=False)
    assert await server.authenticate(None) == DEFAULT_PROJECT

    created = await command_line.create("acme")
    clock.now += 4.9
    assert await server.authenticate(None) == DEFAULT_PROJECT
    clock.now += 0.1
    assert await _refusal(server, None) == "API_KEY_MISSING"
    assert await server.authenticate(created.secret) == "acme"


async def test_a_revocation_elsewhere_takes_effect_within_the_bound(
    storage: SqliteStorage,
) -> None:
    clock = Clock()
    server = ApiKeys(storage, always_required=False, cache_seconds=5, clock=clock)
    command_line = ApiKeys(storage, always_required=False)
    created = await command_line.create("acme")
    assert await server.authenticate(created.secret) == "acme"

    await command_line.revoke(created.record.id)
    clock.now += 4.9
    assert await server.authenticate(created.secret) == "acme"
    clock.now += 0.1
    assert await _refusal(server, created.secret) == "API_KEY_REVOKED"


async def test_a_revocation_through_the_same_instance_is_immediate(
    storage: SqliteStorage,
) -> None:
    keys = ApiKeys(storage, always_required=False, cache_seconds=3600)
    created = await keys.create("acme")
    assert await keys.authenticate(created.secret) == "acme"

    record, revoked_now = await keys.revoke(created.record.id)

    assert revoked_now
    assert record.revoked_at is not None
    assert await _refusal(keys, created.secret) == "API_KEY_REVOKED"
    assert (await keys.revoke(created.record.id))[1] is False


async def test_revoking_every_key_keeps_keys_required(storage: SqliteStorage) -> None:
    keys = ApiKeys(storage, always_required=False)
    created = await keys.create("acme")
    await keys.revoke(created.record.id)

    fresh = ApiKeys(storage, always_required=False)
    assert await _refusal(fresh, None) == "API_KEY_MISSING"
    assert not await fresh.has_active_key()


async def test_cached_lookups_spare_the_database(tmp_path: Path) -> None:
    storage = CountingStorage(SqliteStorage(str(tmp_path / "counted.db")))
    await storage.start()
    try:
        clock = Clock()
        created = await ApiKeys(storage, always_required=False).create("acme")
        keys = ApiKeys(storage, always_required=True, cache_seconds=5, clock=clock)
        before = storage.reads

        projects = await asyncio.gather(*(keys.authenticate(created.secret) for _ in range(50)))
        for _ in range(50):
            await keys.authenticate(created.secret)

        assert set(projects) == {"acme"}
        assert storage.reads - before == 1
        clock.now += 5
        await keys.authenticate(created.secret)
        assert storage.reads - before == 2
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("project", "name"),
    [("", "n"), ("has space", "n"), ("-leading-dash", "n"), ("p" * 65, "n"), ("é", "n")],
)
async def test_keys_need_a_well_formed_project_and_name(
    storage: SqliteStorage, project: str, name: str
) -> None:
    with pytest.raises(InvalidArgument):
        await ApiKeys(storage, always_required=False).create(project, name)


async def test_a_name_is_bounded(storage: SqliteStorage) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await ApiKeys(storage, always_required=False).create("acme", "n" * 257)
    assert raised.value.violations[0].field == "name"


async def test_revoking_an_unknown_key_is_not_found(storage: SqliteStorage) -> None:
    keys = ApiKeys(storage, always_required=False)
    with pytest.raises(NotFound):
        await keys.revoke("key_unknown")
    with pytest.raises(InvalidArgument):
        await keys.revoke("asst_wrongkind")
