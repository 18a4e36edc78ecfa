"""What only PostgreSQL promises: replicas sharing the database, and a server that can be away."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from assistants_grpc.adapters.storage.postgres import PostgresStorage
from assistants_grpc.ports.storage import ClaimedRun, Storage, StorageUnavailable

from .backends import PostgresBackend
from .factories import NOW, make_run, make_thread


@pytest.mark.postgres
async def test_replicas_never_claim_the_same_run(postgres_backend: PostgresBackend) -> None:
    replicas = [await postgres_backend.open(), await postgres_backend.open()]
    run_ids: set[str] = set()
    async with replicas[0].transaction() as s:
        for _ in range(50):
            thread = make_thread()
            await s.insert_thread(thread)
            run = make_run(thread)
            await s.insert_run(run)
            run_ids.add(run.id)

    async def worker(storage: Storage, owner: str) -> list[ClaimedRun]:
        claimed: list[ClaimedRun] = []
        for _ in range(100):
            async with storage.transaction() as s:
                batch = await s.claim_runs(owner, NOW, 60, 2)
            if not batch:
                break
            claimed += batch
        return claimed

    async with asyncio.timeout(15):
        results = await asyncio.gather(
            *(
                worker(replica, f"replica-{r}")
                for r, replica in enumerate(replicas)
                for _ in range(3)
            )
        )

    per_replica = [
        [c.run.id for result in results[r * 3 : r * 3 + 3] for c in result] for r in range(2)
    ]
    every_claim = per_replica[0] + per_replica[1]
    assert set(every_claim) == run_ids
    assert len(every_claim) == len(run_ids)
    assert not set(per_replica[0]) & set(per_replica[1])
    assert {c.attempt for result in results for c in result} == {1}


async def test_an_unreachable_server_is_reported_quickly() -> None:
    # A port bound but never listened on refuses connections, and no other process can take it.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        storage = PostgresStorage(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        started = time.monotonic()

        with pytest.raises(StorageUnavailable):
            async with asyncio.timeout(10):
                await storage.start()

    assert time.monotonic() - started < 5
    with pytest.raises(StorageUnavailable):
        await storage.ping()
