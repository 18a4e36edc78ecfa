"""Claiming runs for workers: leases, attempts that fence stale owners, and expiry."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from assistants_grpc.domain.models import Run, RunStatus
from assistants_grpc.ports.storage import ClaimedRun, Storage

from .factories import NOW, PROJECT, make_run, make_thread

LEASE = 30
EXPIRED = NOW + LEASE + 1


async def insert_runs(storage: Storage, *statuses: str, expires_at: int | None = None) -> list[Run]:
    """One run per status, each on its own thread (one active run per thread)."""
    runs: list[Run] = []
    async with storage.transaction() as s:
        for status in statuses:
            thread = make_thread()
            await s.insert_thread(thread)
            run = make_run(thread, status=status, expires_at=expires_at)
            await s.insert_run(run)
            runs.append(run)
    return runs


async def claim(storage: Storage, owner: str, now: int = NOW, limit: int = 10) -> list[ClaimedRun]:
    async with storage.transaction() as s:
        return await s.claim_runs(owner, now, LEASE, limit)


async def update(
    storage: Storage, run: Run, fence: ClaimedRun | None = None, *, release_lease: bool = False
) -> bool:
    async with storage.transaction() as s:
        return await s.update_run(run, fence=fence, release_lease=release_lease)


async def stored(storage: Storage, run: Run) -> Run:
    async with storage.read() as s:
        found = await s.get_run(PROJECT, run.id)
    assert found is not None
    return found


async def test_a_queued_run_is_claimed_once(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")

    claims = await claim(storage, "worker-a")

    assert claims == [ClaimedRun(run=run, attempt=1)]
    assert await claim(storage, "worker-b") == []
    assert await claim(storage, "worker-a", now=NOW + LEASE) == []


async def test_claims_take_the_oldest_runs_first_up_to_the_limit(storage: Storage) -> None:
    runs = await insert_runs(storage, *["queued"] * 5)

    first = await claim(storage, "worker-a", limit=2)
    second = await claim(storage, "worker-b", limit=10)

    assert {c.run.id for c in first} == {runs[0].id, runs[1].id}
    assert {c.run.id for c in second} == {r.id for r in runs[2:]}


async def test_an_expired_lease_lets_another_worker_take_over(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [first] = await claim(storage, "worker-a")
    assert await update(storage, replace(run, status="in_progress", started_at=NOW), first)

    [second] = await claim(storage, "worker-b", now=EXPIRED)

    assert second.attempt == first.attempt + 1
    assert second.run.status == "in_progress"
    assert await claim(storage, "worker-c", now=EXPIRED) == []


async def test_waiting_and_ended_runs_are_never_claimed(storage: Storage) -> None:
    idle = ["requires_action", *sorted(RunStatus.TERMINAL)]
    await insert_runs(storage, *idle)
    cancelling, unowned = await insert_runs(storage, "cancelling", "in_progress")

    claims = await claim(storage, "worker-a", now=NOW + 10 * LEASE)

    # A cancel still has to be carried out, and an in-progress run nobody holds was given back.
    assert {c.run.id for c in claims} == {cancelling.id, unowned.id}
    assert await claim(storage, "worker-b", now=NOW + 10 * LEASE) == []


async def test_a_stale_owner_can_no_longer_write(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [stale] = await claim(storage, "worker-a")
    [current] = await claim(storage, "worker-b", now=EXPIRED)
    progress = replace(run, status="in_progress", started_at=EXPIRED)
    assert await update(storage, progress, current) is True

    refused = replace(run, status="completed", completed_at=EXPIRED)

    assert await update(storage, refused, stale) is False
    assert await stored(storage, run) == progress


async def test_a_fenced_write_does_not_undo_a_cancel(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [claimed] = await claim(storage, "worker-a")
    assert await update(storage, replace(run, status="in_progress"), claimed) is True
    cancel = replace(run, status="cancelling")
    assert await update(storage, cancel) is True

    for status in ("in_progress", "completed", "failed", "requires_action"):
        assert await update(storage, replace(run, status=status), claimed) is False
    assert await stored(storage, run) == cancel
    # The owner keeps its lease while it winds the run down.
    assert await claim(storage, "worker-b") == []

    cancelled = replace(run, status="cancelled", cancelled_at=NOW + 1)
    assert await update(storage, cancelled, claimed) is True
    assert await stored(storage, run) == cancelled


async def test_a_released_lease_needs_no_time_to_run_out(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [first] = await claim(storage, "worker-a")
    waiting = replace(run, status="requires_action")
    assert await update(storage, waiting, first, release_lease=True) is True
    # Tool outputs arrive through the API, which queues the run again.
    assert await update(storage, replace(run, status="queued")) is True

    [second] = await claim(storage, "worker-b")

    assert second.attempt == first.attempt + 1


async def test_a_write_without_release_keeps_the_lease(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [claimed] = await claim(storage, "worker-a")

    assert await update(storage, replace(run, status="in_progress"), claimed) is True
    assert await update(storage, replace(run, status="in_progress", started_at=NOW)) is True

    assert await claim(storage, "worker-b") == []


async def test_a_worker_cannot_move_a_run_that_waits(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    [claimed] = await claim(storage, "worker-a")
    waiting = replace(run, status="requires_action")
    assert await update(storage, waiting, claimed) is True

    # The claim is still the current one, but the next move is the caller's (tool outputs).
    assert await update(storage, replace(run, status="in_progress"), claimed) is False
    assert await update(storage, replace(run, status="completed"), claimed) is False
    assert await stored(storage, run) == waiting


async def test_the_worker_view_reports_the_current_attempt(storage: Storage) -> None:
    [run] = await insert_runs(storage, "queued")
    async with storage.transaction() as s:
        assert await s.get_run_for_worker(run.id) == (run, 0)
    [first] = await claim(storage, "worker-a")
    [second] = await claim(storage, "worker-b", now=EXPIRED)

    async with storage.transaction() as s:
        assert await s.get_run_for_worker(run.id) == (run, second.attempt)
        assert await s.get_run_for_worker("run_missing") is None
    assert second.attempt == first.attempt + 1


async def test_renewing_reports_the_runs_taken_over(storage: Storage) -> None:
    oldest, newest = await insert_runs(storage, "queued", "queued")
    claims = await claim(storage, "worker-a")
    # worker-a stalls past its lease, and worker-b takes the oldest run over.
    [taken] = await claim(storage, "worker-b", now=EXPIRED, limit=1)
    assert taken.run.id == oldest.id
    [still_held] = [c for c in claims if c.run.id == newest.id]

    async with storage.transaction() as s:
        assert await s.renew_leases("worker-a", claims, EXPIRED, LEASE) == {oldest.id}
        assert await s.renew_leases("worker-a", [still_held], EXPIRED, LEASE) == set()
        assert await s.renew_leases("worker-c", [still_held], EXPIRED, LEASE) == {newest.id}

    # Without the renewal the newest run would have been free since NOW + LEASE.
    assert await claim(storage, "worker-c", now=EXPIRED + LEASE - 1) == []
    assert len(await claim(storage, "worker-c", now=EXPIRED + LEASE + 1)) == 2


async def test_a_released_run_is_claimable_at_once(storage: Storage) -> None:
    await insert_runs(storage, "queued")
    [first] = await claim(storage, "worker-a")

    async with storage.transaction() as s:
        await s.release_run(first, "worker-a")
    [second] = await claim(storage, "worker-b")

    assert second.attempt == first.attempt + 1
    async with storage.transaction() as s:
        # Neither the previous owner nor a stranger can give away the new claim.
        await s.release_run(first, "worker-a")
        await s.release_run(second, "worker-c")
    assert await claim(storage, "worker-c") == []


async def test_runs_past_expiry_are_the_overdue_waiting_ones(storage: Storage) -> None:
    late = await insert_runs(storage, "requires_action", expires_at=NOW - 10)
    later = await insert_runs(storage, "requires_action", expires_at=NOW - 20)
    await insert_runs(storage, "requires_action", expires_at=NOW + 10)
    await insert_runs(storage, "requires_action", expires_at=None)
    await insert_runs(storage, "queued", "completed", expires_at=NOW - 30)

    async with storage.read() as s:
        overdue = await s.runs_past_expiry(NOW, 10)
        first = await s.runs_past_expiry(NOW, 1)
        assert await s.runs_past_expiry(NOW - 20, 10) == []

    assert overdue == later + late
    assert first == later


@pytest.mark.parametrize("status", ["queued", "in_progress"])
async def test_an_ended_run_leaves_the_queue(storage: Storage, status: str) -> None:
    [run] = await insert_runs(storage, status)
    [claimed] = await claim(storage, "worker-a")

    assert await update(storage, replace(run, status="completed"), claimed) is True

    # Even once the lease has run out: what has ended needs no worker.
    assert await claim(storage, "worker-b", now=EXPIRED) == []
