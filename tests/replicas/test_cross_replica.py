"""Any replica serves any run: a run created through one replica is streamed through another
and cancelled through a third, and the one-active-run-per-thread rule holds across replicas."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from assistants.v1 import run_service_pb2

from ..grpc.rich_errors import RichError
from .cluster import (
    MODEL,
    Cluster,
    assert_contiguous,
    model_calls,
    names,
    read_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(60)]

EXPECTED_COMPLETION = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
TAIL = [
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


async def test_run_created_on_one_replica_streams_live_on_the_others(cluster: Cluster) -> None:
    # Paced, so that the other replicas follow it live rather than replay a finished run.
    model = f"{MODEL}@tokens=20,delay_ms=20"
    assistant_id, thread_id = await cluster.new_conversation(0)
    created = await cluster.stubs[0].runs.CreateRun(
        run_service_pb2.CreateRunRequest(
            thread_id=thread_id, assistant_id=assistant_id, model=model
        )
    )
    run_id = created.run.id
    calls = [cluster.subscribe(replica, thread_id, run_id) for replica in (1, 2)]
    streams = await asyncio.gather(*(read_until(call, "done", timeout=10) for call in calls))

    assert names(streams[0]) == names(streams[1])
    assert [e.sequence_number for e in streams[0]] == [e.sequence_number for e in streams[1]]
    assert_contiguous(streams[0])
    events = names(streams[0])
    assert events[: len(EXPECTED_COMPLETION)] == EXPECTED_COMPLETION
    assert events[-len(TAIL) :] == TAIL
    text = "".join(
        e.message_delta.delta.content[0].text.value
        for e in streams[1]
        if e.event == "thread.message.delta"
    )
    assert len(text.split()) == 20
    for replica in range(cluster.size):
        assert (await cluster.get_run(replica, thread_id, run_id)).status == "completed"
    assert model_calls(cluster.upstream, model) == 1


async def test_run_thread_stream_matches_what_other_replicas_see(cluster: Cluster) -> None:
    # Long enough (0.6 s) for the lease holder to be looked up while the run executes.
    model = f"{MODEL}@tokens=30,delay_ms=20"
    assistant_id, thread_id = await cluster.new_conversation(2)
    stream = cluster.stubs[2].runs.RunThreadStream(
        run_service_pb2.RunThreadStreamRequest(
            thread_id=thread_id, assistant_id=assistant_id, model=model
        )
    )
    first = await read_until(stream, "thread.run.created", timeout=5)
    run_id = first[0].run.id
    owner = await cluster.owner_of(run_id)
    # Followers on replicas that do not execute the run, one from the start and one resuming
    # after the run's second event, as a client reconnecting elsewhere would.
    followers = cluster.others(owner)
    from_start = cluster.subscribe(followers[0], thread_id, run_id)
    resumed = cluster.subscribe(followers[-1], thread_id, run_id, after=2)
    direct, replayed, rest = await asyncio.gather(
        read_until(stream, "done", timeout=10),
        read_until(from_start, "done", timeout=10),
        read_until(resumed, "done", timeout=10),
    )
    direct = first + direct

    assert_contiguous(direct)
    assert [(e.sequence_number, e.event) for e in direct] == [
        (e.sequence_number, e.event) for e in replayed
    ]
    assert [(e.sequence_number, e.event) for e in rest] == [
        (e.sequence_number, e.event) for e in direct[2:]
    ]
    assert direct[-2].event == "thread.run.completed"


async def test_cancel_on_a_third_replica_aborts_the_model_call_on_the_owner(
    cluster: Cluster,
) -> None:
    # 400 tokens, 25 ms apart: ten seconds of streaming, far longer than the test waits.
    model = f"{MODEL}@tokens=400,delay_ms=25"
    upstream = cluster.upstream
    requests_before, disconnects_before = upstream.request_count, upstream.disconnects
    assistant_id, thread_id = await cluster.new_conversation(0)
    created = await cluster.stubs[0].runs.CreateRun(
        run_service_pb2.CreateRunRequest(
            thread_id=thread_id, assistant_id=assistant_id, model=model
        )
    )
    run_id = created.run.id
    owner = await cluster.owner_of(run_id)
    # Three roles on three replicas: created through 0, cancelled through a replica that
    # neither created nor executes the run, watched through the remaining one.
    canceller = cluster.others(owner, 0)[0]
    watcher = cluster.others(0, canceller)[0]
    watch = cluster.subscribe(watcher, thread_id, run_id)
    # Mid-stream: the model call is in flight and some of its text is already committed.
    await read_until(watch, "thread.message.delta", timeout=10)
    await upstream.wait_for_requests(requests_before + 1, within_seconds=5)

    started = time.monotonic()
    cancelled = await cluster.stubs[canceller].runs.CancelRun(
        run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id)
    )
    assert cancelled.run.status in ("cancelling", "cancelled")
    ending = await read_until(watch, "done", timeout=5)
    elapsed = time.monotonic() - started

    assert "thread.run.cancelling" in names(ending)
    assert ending[-2].event == "thread.run.cancelled"
    assert "thread.message.incomplete" in names(ending)
    assert elapsed < 3.0, f"the cancel took {elapsed:.2f} s"
    # The owner closed its connection to the model rather than letting the reply play out.
    await upstream.wait_for_disconnects(disconnects_before + 1, within_seconds=5)
    assert upstream.request_count == requests_before + 1
    run = await cluster.get_run(canceller, thread_id, run_id)
    assert run.status == "cancelled"
    assert run.HasField("cancelled_at")


async def test_one_active_run_per_thread_across_replicas(cluster: Cluster) -> None:
    # The winner hangs at the model, so it stays active while the others try.
    model = f"{MODEL}@hang"
    attempts_per_replica = 3
    for _ in range(3):
        assistant_id, thread_id = await cluster.new_conversation(1)
        request = run_service_pb2.CreateRunRequest(
            thread_id=thread_id, assistant_id=assistant_id, model=model
        )
        outcomes = await asyncio.gather(
            *(
                cluster.stubs[replica].runs.CreateRun(request, timeout=10)
                for replica in range(cluster.size)
                for _ in range(attempts_per_replica)
            ),
            return_exceptions=True,
        )
        started = [o for o in outcomes if isinstance(o, run_service_pb2.CreateRunResponse)]
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(started) == 1, outcomes
        assert len(refused) == cluster.size * attempts_per_replica - 1, outcomes
        for error in refused:
            rich = RichError.of(error)
            assert rich.code == grpc.StatusCode.FAILED_PRECONDITION, rich
            assert rich.reason == "THREAD_HAS_ACTIVE_RUN", rich
        runs = await cluster.stubs[2].runs.ListRuns(
            run_service_pb2.ListRunsRequest(thread_id=thread_id)
        )
        assert [r.id for r in runs.data] == [started[0].run.id]
        await cluster.stubs[0].runs.CancelRun(
            run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=started[0].run.id)
        )
