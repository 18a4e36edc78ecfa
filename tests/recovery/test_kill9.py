"""The real server killed with -9 mid-run, on SQLite and on PostgreSQL, then started again on
the same database: nothing committed is lost, and no run stays stuck. The run that was
streaming is resumed once its lease runs out, the queued one is executed, the one waiting
for tool outputs keeps waiting, and streams resumed from the last event seen reach `done`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistants.v1 import (
    assistant_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..faults.helpers import (
    LOOKUP_TOOL,
    MODEL,
    TERMINAL,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    create_run,
    get_run,
    list_messages_request,
    model_routes,
    names,
    new_assistant,
    new_thread,
    read_until,
    serve_flags,
    subscribe,
    wait_for_status,
)
from ..support.postgres import fresh_postgres_database
from ..support.servers import ServerProcess
from ..support.stubs import Stubs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

LEASE_SECONDS = 2
# The lease of the killed server's run must run out (up to a second more, since leases are
# kept in whole seconds) and the new server must poll for it; the rest is slack for two cores.
RESUME_SECONDS = LEASE_SECONDS + 10
START_SECONDS = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'assistants.db'}"
        return
    async with fresh_postgres_database("assistants_recovery") as url:
        yield url


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply_tokens=5) as fake:
        yield fake


def _server(database_url: str, upstream: FakeUpstream) -> ServerProcess:
    # One worker, so that a second run waits queued behind the one streaming.
    flags = serve_flags(
        database_url,
        model_routes(upstream.base_url),
        lease_seconds=LEASE_SECONDS,
        worker_concurrency=1,
    )
    return ServerProcess(flags, env={UPSTREAM_KEY_ENV: UPSTREAM_KEY})


async def test_a_killed_server_loses_nothing_and_leaves_no_run_stuck(
    database_url: str, upstream: FakeUpstream
) -> None:
    first = _server(database_url, upstream)
    second = _server(database_url, upstream)
    try:
        await first.start(START_SECONDS)
        stubs = Stubs.connect(first.target)
        assistant_id = await new_assistant(stubs, tools=[LOOKUP_TOOL])

        # Finished before the kill: a completed run and its reply.
        finished_thread = await new_thread(stubs)
        finished = await stubs.runs.RunThread(
            run_service_pb2.RunThreadRequest(thread_id=finished_thread, assistant_id=assistant_id),
            timeout=10,
        )
        assert finished.run.status == "completed", finished.run
        # Waiting for tool outputs.
        waiting_thread = await new_thread(stubs)
        waiting = await create_run(stubs, waiting_thread, assistant_id, f"{MODEL}@tools=1")
        waiting_run = await wait_for_status(
            stubs, waiting_thread, waiting, TERMINAL | {"requires_action"}, timeout=10
        )
        assert waiting_run.status == "requires_action", waiting_run
        # Streaming, slowly, when the kill lands.
        streaming_thread = await new_thread(stubs)
        upstream.enqueue("tokens=400,delay_ms=20")
        streaming = await create_run(stubs, streaming_thread, assistant_id)
        seen = await read_until(
            subscribe(stubs, streaming_thread, streaming), "thread.message.delta", timeout=10
        )
        # Queued behind it, never started.
        queued_thread = await new_thread(stubs)
        queued = await create_run(stubs, queued_thread, assistant_id)
        assert (await get_run(stubs, queued_thread, queued)).status == "queued"
        calls_before_kill = upstream.request_count

        await stubs.close()
        first.kill()
        await upstream.wait_for_disconnects(1)

        await second.start(START_SECONDS)
        stubs = Stubs.connect(second.target)
        try:
            # Everything committed is there.
            await stubs.assistants.GetAssistant(
                assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
            )
            for thread_id in (finished_thread, waiting_thread, streaming_thread, queued_thread):
                await stubs.threads.GetThread(
                    thread_service_pb2.GetThreadRequest(thread_id=thread_id), timeout=5
                )
            history = await stubs.messages.ListMessages(
                list_messages_request(finished_thread), timeout=5
            )
            assert [(m.role, m.status) for m in history.data] == [
                ("user", "completed"),
                ("assistant", "completed"),
            ]
            assert (await get_run(stubs, finished_thread, finished.run.id)).status == "completed"

            # The streaming run is resumed where it stopped: a client resuming from the last
            # event it saw reads on, without a gap, to the end.
            rest = await read_until(
                subscribe(stubs, streaming_thread, streaming, after=seen[-1].sequence_number),
                "done",
                timeout=RESUME_SECONDS,
            )
            assert rest[0].sequence_number == seen[-1].sequence_number + 1
            assert names(rest)[-2:] == ["thread.run.completed", "done"], names(rest)
            # The queued run is executed from its start.
            whole = await read_until(
                subscribe(stubs, queued_thread, queued), "done", timeout=RESUME_SECONDS
            )
            assert names(whole)[0] == "thread.run.created"
            assert names(whole)[-2:] == ["thread.run.completed", "done"], names(whole)
            # Nothing else was sent to the model: the run waiting for tool outputs was left
            # as it was, with the same calls to answer.
            assert upstream.request_count == calls_before_kill + 2
            still_waiting = await get_run(stubs, waiting_thread, waiting)
            assert still_waiting.status == "requires_action"
            assert still_waiting.required_action == waiting_run.required_action
            call_ids = [c.id for c in still_waiting.required_action.submit_tool_outputs.tool_calls]
            await stubs.runs.SubmitToolOutputs(
                run_service_pb2.SubmitToolOutputsRequest(
                    thread_id=waiting_thread,
                    run_id=waiting,
                    tool_outputs=[
                        run_service_pb2.ToolOutput(tool_call_id=i, output="42") for i in call_ids
                    ],
                ),
                timeout=5,
            )
            ended = await wait_for_status(stubs, waiting_thread, waiting, TERMINAL, timeout=10)
            assert ended.status == "completed", ended
        finally:
            await stubs.close()
    except BaseException:
        print("--- first server\n" + "".join(first.output))
        print("--- second server\n" + "".join(second.output))
        raise
    finally:
        first.stop()
        second.stop()


async def test_a_run_whose_server_keeps_dying_is_failed_with_a_clear_error(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """A run that every execution dies on is not retried forever: after three attempts the
    next server fails it with a `last_error` that says why, and its stream reaches `done`."""
    database_url = f"sqlite:///{tmp_path / 'assistants.db'}"
    servers = [_server(database_url, upstream) for _ in range(4)]
    try:
        await servers[0].start(START_SECONDS)
        stubs = Stubs.connect(servers[0].target)
        assistant_id = await new_assistant(stubs)
        thread_id = await new_thread(stubs)
        # Paced slowly: every kill must land before the reply ends.
        run_id = await create_run(
            stubs, thread_id, assistant_id, f"{MODEL}@tokens=100,delay_ms=200"
        )
        await stubs.close()
        for attempt in range(3):
            # Killed mid-call; the next server starts while the run's lease runs out.
            await upstream.wait_for_requests(attempt + 1, within_seconds=RESUME_SECONDS)
            servers[attempt].kill()
            await servers[attempt + 1].start(START_SECONDS)
        stubs = Stubs.connect(servers[3].target)
        try:
            events = await read_until(
                subscribe(stubs, thread_id, run_id), "done", timeout=RESUME_SECONDS
            )
            run = await get_run(stubs, thread_id, run_id)
        finally:
            await stubs.close()
    except BaseException:
        for index, server in enumerate(servers):
            print(f"--- server {index}\n" + "".join(server.output))
        raise
    finally:
        for server in servers:
            server.stop()
    assert names(events)[-2:] == ["thread.run.failed", "done"], names(events)
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert "interrupted" in run.last_error.message, run.last_error
    assert upstream.request_count == 3
