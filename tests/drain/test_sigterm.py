"""SIGTERM drains the real server: health turns NOT_SERVING and new calls are refused with
UNAVAILABLE (reason DRAINING) at once; runs get the grace period to finish, and the streams
following them end with `done` or, past the grace period, with an `error` event coded
`resubscribe` that carries the last sequence number delivered; a waiting RunThread answers
with the run as it is; work not done is left for the next start; and the exit code is 0."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from assistants.v1 import assistant_service_pb2, run_service_pb2
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..faults.helpers import (
    MODEL,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    assert_contiguous,
    create_run,
    eventually,
    get_run,
    health_status,
    labels,
    model_routes,
    names,
    new_assistant,
    new_thread,
    read_to_end,
    read_until,
    scrape_metrics,
    serve_flags,
    subscribe,
)
from ..grpc.rich_errors import rpc_error
from ..support.servers import ServerProcess
from ..support.stubs import Stubs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

GRACE_SECONDS = 3.0
_METRICS_LINE = re.compile(r"metrics on 127\.0\.0\.1:(\d+)")
# After the grace period: giving runs back, closing the database, and the interpreter's exit,
# on a busy two-core machine.
EXIT_SLACK_SECONDS = 8.0
START_SECONDS = 30.0
# Replies paced so that one ends well within the grace period and one well after it.
SHORT_REPLY = f"{MODEL}@tokens=20,delay_ms=50"
LONG_REPLY = "tokens=400,delay_ms=50"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply_tokens=5) as fake:
        yield fake


def _server(database_url: str, upstream: FakeUpstream, **flags: object) -> ServerProcess:
    args = serve_flags(
        database_url,
        model_routes(upstream.base_url),
        grace_period_seconds=GRACE_SECONDS,
        # Three runs execute; a fourth waits queued.
        worker_concurrency=3,
        **flags,
    )
    return ServerProcess(args, env={UPSTREAM_KEY_ENV: UPSTREAM_KEY})


async def test_sigterm_drains_calls_and_streams_and_leaves_the_rest_for_the_next_start(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    database_url = f"sqlite:///{tmp_path / 'assistants.db'}"
    first = _server(database_url, upstream)
    # The second also serves metrics, on a port of its choosing that it prints.
    second = _server(database_url, upstream, metrics_port=0)
    try:
        await first.start(START_SECONDS)
        stubs = Stubs.connect(first.target)
        assistant_id = await new_assistant(stubs)
        long_thread, short_thread, waited_thread, queued_thread = [
            await new_thread(stubs) for _ in range(4)
        ]
        # The long replies come from the upstream's queue, so that the runs, resumed after the
        # restart, get a short default reply.
        upstream.enqueue(LONG_REPLY, LONG_REPLY)
        long_run = await create_run(stubs, long_thread, assistant_id)
        long_stream = subscribe(stubs, long_thread, long_run)
        await read_until(long_stream, "thread.message.delta", timeout=10)
        waited = stubs.runs.RunThread(
            run_service_pb2.RunThreadRequest(thread_id=waited_thread, assistant_id=assistant_id),
            timeout=60,
        )
        await upstream.wait_for_requests(2)
        short_run = await create_run(stubs, short_thread, assistant_id, SHORT_REPLY)
        short_stream = subscribe(stubs, short_thread, short_run)
        await read_until(short_stream, "thread.message.delta", timeout=10)
        queued_run = await create_run(stubs, queued_thread, assistant_id)
        assert (await get_run(stubs, queued_thread, queued_run)).status == "queued"

        signalled = time.monotonic()
        exited = asyncio.create_task(first.terminate(GRACE_SECONDS + EXIT_SLACK_SECONDS))

        async def not_serving() -> bool | None:
            status = await health_status(stubs)
            return True if status == health_pb2.HealthCheckResponse.NOT_SERVING else None

        await eventually(not_serving, 2.0, "health did not turn NOT_SERVING")
        for service in ("assistants.v1.RunService", "assistants.v1.AssistantService"):
            assert await health_status(stubs, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        refused = await rpc_error(
            stubs.assistants.GetAssistant(
                assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
            )
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAVAILABLE, "DRAINING")
        refused_stream = await rpc_error(
            read_to_end(subscribe(stubs, long_thread, long_run), timeout=5)
        )
        assert refused_stream.reason == "DRAINING"

        # The short run finishes within the grace period, and its stream with it.
        short_events = await read_to_end(short_stream, timeout=GRACE_SECONDS + 2)
        assert names(short_events)[-2:] == ["thread.run.completed", "done"]
        assert time.monotonic() - signalled < GRACE_SECONDS
        # The long one does not: its stream is told where to resume, at the grace period's end.
        long_events = await read_to_end(long_stream, timeout=GRACE_SECONDS + 2)
        told = long_events[-1]
        assert told.event == "error", names(long_events)
        assert told.error.code == "resubscribe"
        assert told.sequence_number == long_events[-2].sequence_number
        assert f"after_sequence_number={told.sequence_number}" in told.error.message
        assert time.monotonic() - signalled < GRACE_SECONDS + 2
        # The RunThread waiting on a run that did not end answers with the run as it is.
        answered = await asyncio.wait_for(waited, 5)
        assert answered.run.status == "in_progress", answered.run

        assert await exited == 0
        assert time.monotonic() - signalled < GRACE_SECONDS + EXIT_SLACK_SECONDS
        await stubs.close()

        # The next start finishes what was left: the long run resumes where its stream was
        # told to resubscribe, and the queued run executes.
        await second.start(START_SECONDS)
        stubs = Stubs.connect(second.target)
        try:
            rest = await read_until(
                subscribe(stubs, long_thread, long_run, after=told.sequence_number),
                "done",
                timeout=15,
            )
            assert_contiguous(rest, first=told.sequence_number + 1)
            assert names(rest)[-2:] == ["thread.run.completed", "done"], names(rest)
            queued_events = await read_until(
                subscribe(stubs, queued_thread, queued_run), "done", timeout=15
            )
            assert names(queued_events)[-2:] == ["thread.run.completed", "done"]
            waited_events = await read_until(
                subscribe(stubs, waited_thread, answered.run.id), "done", timeout=15
            )
            assert names(waited_events)[-2] == "thread.run.completed"
            assert (await get_run(stubs, long_thread, long_run)).status == "completed"
            metrics_port = int(_METRICS_LINE.findall("".join(second.output))[0])
            samples = await scrape_metrics(metrics_port)
            got_run = labels(method="/assistants.v1.RunService/GetRun", code="OK")
            assert samples[("assistants_grpc_calls_total", got_run)] == 1
        finally:
            await stubs.close()
        # With nothing in flight, a drain is immediate.
        signalled = time.monotonic()
        assert await second.terminate(GRACE_SECONDS + EXIT_SLACK_SECONDS) == 0
        assert time.monotonic() - signalled < EXIT_SLACK_SECONDS
    except BaseException:
        print("--- first server\n" + "".join(first.output))
        print("--- second server\n" + "".join(second.output))
        raise
    finally:
        first.stop()
        second.stop()
