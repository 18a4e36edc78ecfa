"""API keys: create, list and revoke them, and tell which project a presented key belongs to.

A key is `sk-asst-` followed by 43 URL-safe characters encoding 32 random bytes. Only its
SHA-256 hash is stored, so a copy of the database does not let anyone call the service, and the
key itself is shown once, when it is created.

Whether a call needs a key at all: always when the service is configured so
(`require_api_keys`, or a bind beyond loopback), and otherwise as soon as any key has been
created. Revoking every key does not reopen the service: a revoked key means someone decided
that callers must identify themselves, and silently accepting anonymous calls again would undo
that decision.

Lookups are cached in memory for `cache_seconds` (5 by default) so that authentication does
not cost a database read per call. A key revoked through this process stops working at once;
a key revoked elsewhere (the `keys revoke` command, another replica) stops working within
`cache_seconds`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from assistants_grpc.application.context import DEFAULT_PROJECT, now
from assistants_grpc.domain.errors import InvalidArgument, NotFound, Unauthenticated
from assistants_grpc.domain.ids import new_id
from assistants_grpc.domain.validation import Violations
from assistants_grpc.ports.storage import ApiKeyRecord, Storage

KEY_PREFIX = "sk-asst-"
"""Makes a leaked key recognisable (secret scanners, log reviews) and tells it from other keys."""
KEY_ID_PREFIX = "key_"
KEY_RANDOM_BYTES = 32
KEY_CACHE_SECONDS = 5.0
MAX_CACHED_KEYS = 10_000
"""Bounds the cache, which also remembers unknown keys, so random keys cannot grow it."""
MAX_KEY_NAME_LENGTH = 256
MAX_PROJECT_ID_LENGTH = 64
# Longer than any key we issue: refused without a database read.
_MAX_PRESENTED_KEY_LENGTH = 128
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def hash_key(secret: str) -> str:
    """The stored form of a key.

    A plain SHA-256 is the right hash here, unlike for passwords: a key carries 256 random bits,
    so there is nothing to guess and the work factor of bcrypt or Argon2 would only slow every
    call down. Being deterministic and unsalted, the hash is also the lookup key (a unique
    index), so authenticating reads one row instead of testing the key against every stored
    hash.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def check_project_id(v: Violations, field: str, project_id: str) -> None:
    if not project_id:
        v.add(field, "is required")
    elif len(project_id) > MAX_PROJECT_ID_LENGTH:
        v.add(field, f"must be at most {MAX_PROJECT_ID_LENGTH} characters")
    elif not project_id.isascii() or not _PROJECT_ID.match(project_id):
        v.add(
            field,
            "must start with a letter or digit and hold only letters, digits, '_', '-' and '.'",
        )


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: `secret` is the key itself, never stored and never shown again."""

    record: ApiKeyRecord
    secret: str


@dataclass(frozen=True, slots=True)
class _CachedLookup:
    expires_at: float
    record: ApiKeyRecord | None


class ApiKeys:
    def __init__(
        self,
        storage: Storage,
        *,
        always_required: bool,
        cache_seconds: float = KEY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._always_required = always_required
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lookups: OrderedDict[str, _CachedLookup] = OrderedDict()
        self._loading: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}
        # Keys are never deleted, so once one exists this stays true for good.
        self._any_key_exists = False
        self._any_key_checked_at: float | None = None

    # --- managing keys ----------------------------------------------------------------------

    async def create(self, project_id: str, name: str = "") -> NewApiKey:
        v = Violations()
        check_project_id(v, "project", project_id)
        if len(name) > MAX_KEY_NAME_LENGTH:
            v.add("name", f"must be at most {MAX_KEY_NAME_LENGTH} characters")
        v.raise_if_any()
        secret = new_secret()
        record = ApiKeyRecord(
            id=new_id(KEY_ID_PREFIX),
            project_id=project_id,
            name=name,
            key_hash=hash_key(secret),
            created_at=now(),
        )
        async with self._storage.transaction() as session:
            await session.insert_api_key(record)
        self._any_key_exists = True
        return NewApiKey(record=record, secret=secret)

    async def list(self) -> list[ApiKeyRecord]:
        """Every key, oldest first, revoked ones included."""
        async with self._storage.read() as session:
            return await session.list_api_keys()

    async def revoke(self, key_id: str) -> tuple[ApiKeyRecord, bool]:
        """Revokes the key; returns it and whether this call revoked it (False: it already
        was). Raises NotFound for an unknown id."""
        if not key_id.startswith(KEY_ID_PREFIX):
            raise InvalidArgument.field("key_id", f"must be an id starting with '{KEY_ID_PREFIX}'")
        async with self._storage.transaction() as session:
            revoked_now = await session.revoke_api_key(key_id, now())
            record = next((k for k in await session.list_api_keys() if k.id == key_id), None)
        if record is None:
            raise NotFound("api_key", key_id)
        self._forget(key_id)
        return record, revoked_now

    async def has_active_key(self) -> bool:
        async with self._storage.read() as session:
            keys = await session.list_api_keys()
        return any(k.revoked_at is None for k in keys)

    # --- authenticating calls ---------------------------------------------------------------

    async def authenticate(self, secret: str | None) -> str:
        """The project of the caller presenting `secret` (None: no key presented), or
        Unauthenticated.

        A presented key is always checked, even while keys are not required: a caller who
        sends one expects its project, not the default one.
        """
        if secret is None:
            if await self.keys_required():
                raise _missing_key()
            return DEFAULT_PROJECT
        if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_PRESENTED_KEY_LENGTH:
            raise _invalid_key()
        record = await self._lookup(hash_key(secret))
        if record is None:
            raise _invalid_key()
        if record.revoked_at is not None:
            raise Unauthenticated("This API key has been revoked.", reason="API_KEY_REVOKED")
        return record.project_id

    async def keys_required(self) -> bool:
        if self._always_required or self._any_key_exists:
            return True
        checked_at = self._any_key_checked_at
        if checked_at is None or self._clock() - checked_at >= self._cache_seconds:
            async with self._storage.read() as session:
                self._any_key_exists = bool(await session.list_api_keys())
            self._any_key_checked_at = self._clock()
        return self._any_key_exists

    async def _lookup(self, key_hash: str) -> ApiKeyRecord | None:
        cached = self._lookups.get(key_hash)
        if cached is not None and cached.expires_at > self._clock():
            return cached.record
        # Calls arriving together with the same uncached key share one database read.
        loading = self._loading.get(key_hash)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key_hash))
            self._loading[key_hash] = loading
            loading.add_done_callback(lambda done: self._loaded(key_hash, done))
        return await asyncio.shield(loading)

    async def _load(self, key_hash: str) -> ApiKeyRecord | None:
        async with self._storage.read() as session:
            record = await session.find_api_key(key_hash)
        self._lookups[key_hash] = _CachedLookup(self._clock() + self._cache_seconds, record)
        self._lookups.move_to_end(key_hash)
        while len(self._lookups) > MAX_CACHED_KEYS:
            self._lookups.popitem(last=False)
        return record

    def _loaded(self, key_hash: str, done: asyncio.Future[ApiKeyRecord | None]) -> None:
        self._loading.pop(key_hash, None)
        if not done.cancelled():
            # Marks a failure as seen even when every waiting call has gone away meanwhile.
            done.exception()

    def _forget(self, key_id: str) -> None:
        for key_hash in [h for h, c in self._lookups.items() if c.record and c.record.id == key_id]:
            del self._lookups[key_hash]


def _missing_key() -> Unauthenticated:
    return Unauthenticated(
        "This call needs an API key: send it as `authorization: Bearer <key>` metadata.",
        reason="API_KEY_MISSING",
    )


def _invalid_key() -> Unauthenticated:
    return Unauthenticated("The API key is not valid.", reason="API_KEY_INVALID")
