"""Fixtures of the multi-replica tests: per test module, a fresh PostgreSQL database, the fake
model upstream (in this process; the replicas are separate processes that call it), and a
cluster of real `assistants-grpc serve` replicas sharing that database.

Without a PostgreSQL server these tests are skipped locally; in CI (CI=true) they fail, since
scale-out must really be tested there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..storage.backends import POSTGRES_ADMIN_URL, unique_name, with_database
from .cluster import Cluster

REPLICAS = 3


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(scope="module")
async def replica_database() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.exceptions.CannotConnectNowError) as error:
        reason = f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error!r}"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    name = unique_name("assistants_replicas")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            # FORCE: a replica killed with -9 may leave its sessions behind for a moment.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply_tokens=5) as fake:
        yield fake


@pytest.fixture(scope="module")
async def cluster(replica_database: str, upstream: FakeUpstream) -> AsyncIterator[Cluster]:
    replicas = Cluster(replica_database, upstream, REPLICAS)
    try:
        await replicas.start()
        yield replicas
    except BaseException:
        print(replicas.logs())
        raise
    finally:
        await replicas.stop()
