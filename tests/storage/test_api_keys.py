"""API keys: found by their hash, listed, revoked once."""

from __future__ import annotations

import pytest

from assistants_grpc.ports.storage import ApiKeyRecord, Storage

from .backends import Backend
from .factories import NOW, OTHER_PROJECT, PROJECT


async def test_keys_are_found_listed_and_revoked(storage: Storage) -> None:
    later = ApiKeyRecord("key_b", OTHER_PROJECT, "deploy", "hash_b", NOW + 5)
    earlier = ApiKeyRecord("key_a", PROJECT, "laptop", "hash_a", NOW)
    async with storage.transaction() as s:
        await s.insert_api_key(later)
        await s.insert_api_key(earlier)

    async with storage.read() as s:
        assert await s.find_api_key("hash_a") == earlier
        assert await s.find_api_key("hash_b") == later
        assert await s.find_api_key("hash_unknown") is None
        assert await s.list_api_keys() == [earlier, later]

    async with storage.transaction() as s:
        assert await s.revoke_api_key("key_a", NOW + 10) is True
        assert await s.revoke_api_key("key_a", NOW + 20) is False
        assert await s.revoke_api_key("key_unknown", NOW + 20) is False

    async with storage.read() as s:
        revoked = ApiKeyRecord("key_a", PROJECT, "laptop", "hash_a", NOW, revoked_at=NOW + 10)
        assert await s.find_api_key("hash_a") == revoked
        assert await s.list_api_keys() == [revoked, later]


async def test_a_hash_belongs_to_one_key(backend: Backend, storage: Storage) -> None:
    async with storage.transaction() as s:
        await s.insert_api_key(ApiKeyRecord("key_a", PROJECT, "one", "hash_same", NOW))

    with pytest.raises(backend.integrity_errors):
        async with storage.transaction() as s:
            await s.insert_api_key(ApiKeyRecord("key_b", PROJECT, "two", "hash_same", NOW))
