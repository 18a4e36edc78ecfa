"""Runs created concurrently through every replica are each executed exactly once: the
replicas compete for the same queue, and the claim (SKIP LOCKED plus an attempt counter)
hands each run to one of them. Each run is followed live through another replica than the one
that created it, and every such stream must deliver the run's whole log up to its end."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from assistants.v1 import message_pb2, run_service_pb2, thread_service_pb2

from .cluster import Cluster, assert_contiguous, eventually, names, read_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(90)]

RUNS = 200
# Calls in flight at once across the replicas; enough to make the claims race.
CLIENT_CONCURRENCY = 48


async def test_concurrent_runs_through_all_replicas_execute_exactly_once(
    cluster: Cluster,
) -> None:
    upstream = cluster.upstream
    requests_before = upstream.request_count
    assistant_id, _ = await cluster.new_conversation(0)
    replica_of = itertools.cycle(range(cluster.size))
    gate = asyncio.Semaphore(CLIENT_CONCURRENCY)

    async def run_one(replica: int) -> tuple[str, str]:
        """Creates a run through `replica` and follows it to its end through the next one."""
        async with gate:
            stubs = cluster.stubs[replica]
            thread = await stubs.threads.CreateThread(
                thread_service_pb2.CreateThreadRequest(
                    messages=[message_pb2.MessageInput(role="user", text="Hi.")]
                ),
                timeout=20,
            )
            thread_id = thread.thread.id
            run = await stubs.runs.CreateRun(
                run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id),
                timeout=20,
            )
            follower = (replica + 1) % cluster.size
            events = await read_until(
                cluster.subscribe(follower, thread_id, run.run.id), "done", timeout=30
            )
            assert_contiguous(events)
            assert names(events)[-2:] == ["thread.run.completed", "done"], names(events)
            return thread_id, run.run.id

    started = await asyncio.gather(*(run_one(next(replica_of)) for _ in range(RUNS)))
    run_ids = [run_id for _, run_id in started]

    async def all_ended() -> bool | None:
        rows = await cluster.fetch(
            "SELECT count(*) FROM runs WHERE id = ANY($1::text[]) AND status IN "
            "('completed', 'failed', 'cancelled', 'expired', 'incomplete')",
            run_ids,
        )
        return True if rows[0][0] == RUNS else None

    await eventually(all_ended, timeout=60, failure=f"not all {RUNS} runs ended", interval=0.2)

    statuses = await asyncio.gather(
        *(
            cluster.get_run(index % cluster.size, thread_id, run_id)
            for index, (thread_id, run_id) in enumerate(started)
        )
    )
    assert {run.status for run in statuses} == {"completed"}
    # One model call per run, and each run claimed once: no replica executed a run that
    # another one had.
    assert upstream.request_count - requests_before == RUNS
    attempts = await cluster.fetch(
        "SELECT attempt, count(*) FROM runs WHERE id = ANY($1::text[]) GROUP BY attempt",
        run_ids,
    )
    assert {row["attempt"]: row["count"] for row in attempts} == {1: RUNS}
    replies = await cluster.fetch(
        "SELECT run_id, count(*) FROM messages WHERE run_id = ANY($1::text[]) GROUP BY run_id",
        run_ids,
    )
    assert len(replies) == RUNS
    assert {row["count"] for row in replies} == {1}
