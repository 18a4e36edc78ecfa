"""Fixtures of the multi-replica tests: per test module, a fresh PostgreSQL database, the fake
model upstream (in this process; the replicas are separate processes that call it), and a
cluster of real `assistants-grpc serve` replicas sharing that database.

Without a PostgreSQL server these tests are skipped locally; in CI (CI=true) they fail, since
scale-out must really be tested there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..support.postgres import fresh_postgres_database
from .cluster import Cluster

REPLICAS = 3


@pytest.fixture(scope="module")
async def replica_database() -> AsyncIterator[str]:
    async with fresh_postgres_database("assistants_replicas") as url:
        yield url


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
