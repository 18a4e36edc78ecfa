"""Following a run's events: SubscribeRun replays what a client missed and follows live until
the next `done`, from any point, for finished runs and across a restart; a client that goes
away does not stop the run; a client that stops reading holds back nobody."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from assistants.v1 import run_service_pb2 as rpb
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.adapters.events import local as local_hub
from assistants_grpc.application import run_engine
from assistants_grpc.application import runs as runs_module
from assistants_grpc.testing.fake_upstream import Behaviour

from .conftest import ServerFactory
from .support import (
    RunServer,
    check_stream,
    last_run,
    names,
    new_assistant,
    new_thread,
    new_thread_with_assistant,
    only,
    read_all,
    read_until,
    streamed_text,
    text_of,
    wait_for_status,
)
from .test_golden_sequences import MESSAGE_STREAMS, PLAIN_RUN, RUN_STARTS

RESUMED_AFTER_RESTART = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    # The second start finds the run in progress: what the stopped worker left open fails,
    # and the model is asked again.
    "thread.message.incomplete",
    "thread.run.step.failed",
    *MESSAGE_STREAMS,
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


def subscribe(
    server: RunServer, thread_id: str, run_id: str, after: int
) -> grpc.aio.UnaryStreamCall[Any, RunStreamEvent]:
    return server.runs.SubscribeRun(
        rpb.SubscribeRunRequest(thread_id=thread_id, run_id=run_id, after_sequence_number=after)
    )


async def test_resume_a_finished_run_from_any_point(
    server: RunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small replay batches, so that resuming crosses several reads of the log.
    monkeypatch.setattr(runs_module, "REPLAY_BATCH", 3)
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(token_delay_ms=10))
    full = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )
    run_id = full[0].run_id

    for after in (0, 1, len(full) // 2, len(full) - 1):
        tail = await read_all(subscribe(server, thread_id, run_id, after))
        assert tail == full[after:], after
        check_stream(tail, earlier=full[:after])
    # Past `done` there is nothing more: the stream ends at once rather than waiting.
    assert await read_all(subscribe(server, thread_id, run_id, len(full)), 2) == []
    assert await read_all(subscribe(server, thread_id, run_id, 10_000), 2) == []


async def test_follow_a_run_live_from_the_start_and_the_middle(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=20, token_delay_ms=15))
    call = server.runs.RunThreadStream(
        rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    head = await read_until(call, "thread.message.delta")
    run_id = head[0].run_id

    rest, from_start, from_middle = await asyncio.gather(
        read_all(call),
        read_all(subscribe(server, thread_id, run_id, 0)),
        read_all(subscribe(server, thread_id, run_id, len(head) - 1)),
    )

    full = head + rest
    check_stream(full)
    assert names(full) == PLAIN_RUN
    assert from_start == full
    assert from_middle == full[len(head) - 1 :]


async def test_a_client_that_goes_away_does_not_cancel_the_run(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=20, token_delay_ms=10))
    call = server.runs.RunThreadStream(
        rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    head = await read_until(call, "thread.message.delta")
    call.cancel()

    run = await wait_for_status(server.stubs, thread_id, head[0].run_id, {"completed"})

    assert server.upstream.disconnects == 0
    events = await read_all(subscribe(server, thread_id, run.id, 0))
    check_stream(events)
    assert names(events) == PLAIN_RUN
    assert len(text_of(events[-4].message).split()) == 20


async def test_streamed_text_is_grouped_into_fewer_deltas_and_kept_whole(
    server: RunServer,
) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    # 30 tokens over about 300 ms: one delta per 50 ms window, not one per token.
    server.upstream.enqueue(Behaviour(tokens=30, token_delay_ms=10))

    events = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )

    check_stream(events)
    message = events[-4].message
    deltas = [e for e in events if e.event == "thread.message.delta"]
    assert 2 <= len(deltas) < 30
    assert streamed_text(events, message.id) == text_of(message)
    assert len(text_of(message).split()) == 30


def test_the_delta_window_widens_with_load_up_to_a_cap() -> None:
    base = run_engine.DELTA_COMMIT_INTERVAL_SECONDS
    per_window = run_engine.RUNS_PER_DELTA_INTERVAL

    assert run_engine.delta_commit_interval(0) == base
    assert run_engine.delta_commit_interval(per_window) == base
    assert run_engine.delta_commit_interval(2 * per_window) == 2 * base
    assert (
        run_engine.delta_commit_interval(100 * per_window)
        == run_engine.MAX_DELTA_COMMIT_INTERVAL_SECONDS
    )


async def test_resume_across_a_restart(start_server: ServerFactory) -> None:
    async with start_server() as first:
        thread_id, assistant_id = await new_thread_with_assistant(first.stubs)
        # The answer stops after two words and the connection stays open: the run is in
        # the middle of its answer when the server stops.
        first.upstream.enqueue(Behaviour(stall_after=3))
        call = first.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        head = await read_until(call, "thread.message.delta")
        stopping = asyncio.create_task(first.stop())
        # A draining server ends open streams with an `error` telling where to resume.
        rest = await read_all(call)
        await stopping
    resubscribe = rest[-1]
    seen = head + rest[:-1]
    assert resubscribe.event == "error"
    assert resubscribe.error.code == "resubscribe"
    assert resubscribe.sequence_number == seen[-1].sequence_number
    run_id = head[0].run_id

    async with start_server() as second:
        tail = await read_all(subscribe(second, thread_id, run_id, seen[-1].sequence_number))
    full = seen + tail
    check_stream(tail, earlier=seen)
    assert names(full) == RESUMED_AFTER_RESTART
    interrupted = only(full, "thread.message.incomplete").message
    answer = only(full, "thread.message.completed").message
    # What was streamed before the restart is kept in the interrupted message.
    assert interrupted.status == "incomplete"
    assert text_of(interrupted) == "The quick"
    assert streamed_text(full, interrupted.id) == "The quick"
    assert answer.status == "completed"
    failed = only(full, "thread.run.step.failed").run_step
    assert failed.last_error.code == "server_error"

    async with start_server() as third:
        for after in (0, len(seen), len(full) - 1):
            replayed = await read_all(subscribe(third, thread_id, run_id, after))
            assert replayed == full[after:]
        finished = await third.runs.GetRun(rpb.GetRunRequest(thread_id=thread_id, run_id=run_id))
    assert finished.run == last_run(full)


async def test_a_client_that_reads_nothing_holds_back_no_run_and_no_stream(
    server: RunServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny buffer per subscriber: the stalled stream overflows it at once and must catch up
    # from storage when its client reads again.
    monkeypatch.setattr(local_hub, "SUBSCRIBER_BUFFER", 4)
    # Instructions of 200 kB make every run event bigger than HTTP/2's flow-control window, so
    # the server cannot push the stalled stream's events into the connection either.
    heavy = await new_assistant(server.stubs, instructions="Be brief. " * 20_000)
    light = await new_assistant(server.stubs)
    stalled_thread = await new_thread(server.stubs, "Tell me a story")
    other_thread = await new_thread(server.stubs, "Hi")
    server.upstream.enqueue(Behaviour(tokens=40, token_delay_ms=5))

    stalled = server.runs.RunThreadStream(
        rpb.RunThreadStreamRequest(thread_id=stalled_thread, assistant_id=heavy)
    )
    await server.upstream.wait_for_requests(1)
    other = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=other_thread, assistant_id=light)
        )
    )
    runs = await server.runs.ListRuns(rpb.ListRunsRequest(thread_id=stalled_thread))
    [stalled_run] = runs.data
    finished = await wait_for_status(server.stubs, stalled_thread, stalled_run.id, {"completed"})

    assert names(other) == PLAIN_RUN
    assert finished.usage.completion_tokens == 40
    events = await read_all(stalled)
    check_stream(events)
    assert names(events) == PLAIN_RUN


async def test_subscribe_refuses_what_it_cannot_follow(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    run = await server.runs.RunThread(
        rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    other_thread = await new_thread(server.stubs)

    for request, code in [
        (
            rpb.SubscribeRunRequest(thread_id=thread_id, run_id="run_unknown"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            rpb.SubscribeRunRequest(thread_id=other_thread, run_id=run.run.id),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            rpb.SubscribeRunRequest(
                thread_id=thread_id, run_id=run.run.id, after_sequence_number=-1
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read_all(server.runs.SubscribeRun(request))
        assert caught.value.code() == code, request


async def test_a_stream_refused_for_the_stream_limit_starts_nothing(
    start_server: ServerFactory,
) -> None:
    async with start_server(worker_concurrency=0, max_concurrent_streams=1) as server:
        thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
        queued = await server.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        holding = subscribe(server, thread_id, queued.run.id, 0)
        await read_until(holding, "thread.run.queued")
        other_thread = await new_thread(server.stubs, "Hi")

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read_all(
                server.runs.RunThreadStream(
                    rpb.RunThreadStreamRequest(thread_id=other_thread, assistant_id=assistant_id)
                )
            )

        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The refused call left no run behind: retrying later can succeed.
        listed = await server.runs.ListRuns(rpb.ListRunsRequest(thread_id=other_thread))
        assert list(listed.data) == []
        holding.cancel()
