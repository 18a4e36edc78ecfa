"""A model upstream that fails in every way at once (rate limits, errors, timeouts, hangs,
broken and dropped streams) fails only the runs that call it, each with the right
`last_error`, while the service goes on answering everything else promptly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from grpc_health.v1 import health_pb2

from assistants.v1 import (
    assistant_service_pb2,
    message_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants_grpc.testing.fake_upstream import FakeUpstream

from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .helpers import (
    MODEL,
    TERMINAL,
    UPSTREAM_KEY_ENV,
    create_run,
    get_run,
    health_status,
    list_messages_request,
    model_routes,
    new_assistant,
    new_thread,
    timed,
    wait_for_status,
)

pytestmark = pytest.mark.timeout(60)

# Each fault, as a model-name suffix the fake upstream obeys, and how the run must end. The
# route retries once, so transient faults are tried twice before the run fails.
FAULTS = {
    "429": "rate_limit_exceeded",
    "rate_limit=0.05": "rate_limit_exceeded",
    "500": "server_error",
    "503": "server_error",
    "400": "invalid_prompt",
    # No first byte within the route's timeout, on both attempts.
    "slow=30": "server_error",
    # Broken mid-stream, after text was committed: never retried, since a retry would repeat
    # deltas the caller already has.
    "malformed=3": "server_error",
    "drop=3": "server_error",
    "stall=3": "server_error",
    "error_event=3": "server_error",
}
# The route of the faults gives up on a silent upstream after this long.
ROUTE_TIMEOUT_SECONDS = 1.0
HANGING_RUNS = 8
# A call the service answers from its own database; far longer would mean it is starved.
PROMPT_SECONDS = 1.0
# Words that would mean the upstream's internals reached the caller.
LEAKS = ("127.0.0.1", "http://", "Traceback", "chatcmpl", "aiohttp", "httpx")


def _routes(upstream: FakeUpstream) -> str:
    patient = {
        "name": "patient-*",
        "provider": "openai_compatible",
        "base_url": upstream.base_url,
        "api_key_env": UPSTREAM_KEY_ENV,
        "max_retries": 0,
        "timeout_seconds": 300,
    }
    return model_routes(
        upstream.base_url,
        patient,
        timeout_seconds=ROUTE_TIMEOUT_SECONDS,
        max_retries=1,
        retry_backoff_seconds=0.05,
        retry_max_backoff_seconds=0.1,
    )


async def _crud_round(stubs: Stubs, assistant_id: str) -> list[float]:
    """One of each kind of resource call; how long each took."""
    durations: list[float] = []
    created, took = await timed(
        stubs.threads.CreateThread(thread_service_pb2.CreateThreadRequest(), timeout=5)
    )
    durations.append(took)
    thread_id = created.thread.id
    # Factories, not calls: a grpc.aio call is sent when it is made, and these go in order.
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: stubs.messages.CreateMessage(
            message_service_pb2.CreateMessageRequest(thread_id=thread_id, role="user", text="hi"),
            timeout=5,
        ),
        lambda: stubs.messages.ListMessages(list_messages_request(thread_id), timeout=5),
        lambda: stubs.assistants.GetAssistant(
            assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id), timeout=5
        ),
        lambda: stubs.assistants.ListAssistants(
            assistant_service_pb2.ListAssistantsRequest(limit=10), timeout=5
        ),
        lambda: stubs.threads.DeleteThread(
            thread_service_pb2.DeleteThreadRequest(thread_id=thread_id), timeout=5
        ),
    ]
    for call in calls:
        _, took = await timed(call())
        durations.append(took)
    return durations


async def test_faults_fail_only_their_runs_while_everything_else_is_served(
    upstream: FakeUpstream, sqlite_url: str
) -> None:
    settings = server_settings(sqlite_url, models=_routes(upstream))
    async with in_process_server(settings) as (app, stubs):
        assistant_id = await new_assistant(stubs)
        threads = await asyncio.gather(
            *(new_thread(stubs) for _ in range(HANGING_RUNS + len(FAULTS) + 1))
        )
        hanging_threads, fault_threads = threads[:HANGING_RUNS], threads[HANGING_RUNS:-1]
        healthy_thread = threads[-1]

        # Several runs hang on the upstream, which never answers them.
        hanging = await asyncio.gather(
            *(create_run(stubs, t, assistant_id, "patient-model@hang") for t in hanging_threads)
        )
        await upstream.wait_for_requests(HANGING_RUNS)
        # Every other kind of fault at the same time.
        faulty = dict(
            zip(
                FAULTS,
                await asyncio.gather(
                    *(
                        create_run(stubs, t, assistant_id, f"{MODEL}@{spec}")
                        for spec, t in zip(FAULTS, fault_threads, strict=True)
                    )
                ),
                strict=True,
            )
        )

        # Meanwhile: resource calls, a run on a healthy route, and the health check.
        durations = [d for _ in range(3) for d in await _crud_round(stubs, assistant_id)]
        assert max(durations) < PROMPT_SECONDS, durations
        started = time.monotonic()
        healthy = await stubs.runs.RunThread(
            run_service_pb2.RunThreadRequest(thread_id=healthy_thread, assistant_id=assistant_id),
            timeout=10,
        )
        assert healthy.run.status == "completed", healthy.run
        assert time.monotonic() - started < 3.0
        assert await health_status(stubs) == health_pb2.HealthCheckResponse.SERVING

        # Each faulty run ends failed, with the code its fault maps to and a plain message.
        for spec, run_id in faulty.items():
            thread_id = fault_threads[list(FAULTS).index(spec)]
            run = await wait_for_status(stubs, thread_id, run_id, TERMINAL, timeout=10)
            assert (run.status, run.last_error.code) == ("failed", FAULTS[spec]), (spec, run)
            assert run.last_error.message, (spec, run)
            for leak in LEAKS:
                assert leak not in run.last_error.message, (spec, run.last_error.message)
            assert run.failed_at > 0, run

        # The hanging runs are still in progress, neither failed nor lost...
        for thread_id, run_id in zip(hanging_threads, hanging, strict=True):
            assert (await get_run(stubs, thread_id, run_id)).status == "in_progress"
        # ...and a cancel ends each at once, aborting its call to the upstream.
        cancels = await asyncio.gather(
            *(
                stubs.runs.CancelRun(
                    run_service_pb2.CancelRunRequest(thread_id=t, run_id=r), timeout=5
                )
                for t, r in zip(hanging_threads, hanging, strict=True)
            )
        )
        assert {c.run.status for c in cancels} <= {"cancelling", "cancelled"}
        for thread_id, run_id in zip(hanging_threads, hanging, strict=True):
            run = await wait_for_status(stubs, thread_id, run_id, TERMINAL, timeout=5)
            assert run.status == "cancelled", run
        await upstream.wait_for_disconnects(HANGING_RUNS)
        assert app.engine.active_runs == 0
        assert await health_status(stubs) == health_pb2.HealthCheckResponse.SERVING


async def test_runs_hanging_on_every_worker_leave_the_api_and_cancels_working(
    upstream: FakeUpstream, sqlite_url: str
) -> None:
    """With every worker stuck on a hanging upstream, new runs wait queued (they are not lost
    or failed), the API still answers at once, a queued run cancels at once, and freeing one
    worker lets the queued healthy run through."""
    workers = 3
    settings = server_settings(sqlite_url, models=_routes(upstream), worker_concurrency=workers)
    async with in_process_server(settings) as (_, stubs):
        assistant_id = await new_assistant(stubs)
        threads = await asyncio.gather(*(new_thread(stubs) for _ in range(workers + 2)))
        hanging = [
            await create_run(stubs, t, assistant_id, "patient-model@hang")
            for t in threads[:workers]
        ]
        await upstream.wait_for_requests(workers)
        doomed_thread, healthy_thread = threads[workers:]
        doomed = await create_run(stubs, doomed_thread, assistant_id, "patient-model@hang")
        healthy = await create_run(stubs, healthy_thread, assistant_id)

        durations = await _crud_round(stubs, assistant_id)
        assert max(durations) < PROMPT_SECONDS, durations
        assert (await get_run(stubs, doomed_thread, doomed)).status == "queued"
        assert (await get_run(stubs, healthy_thread, healthy)).status == "queued"

        cancelled, took = await timed(
            stubs.runs.CancelRun(
                run_service_pb2.CancelRunRequest(thread_id=doomed_thread, run_id=doomed),
                timeout=5,
            )
        )
        assert cancelled.run.status == "cancelled"
        assert took < PROMPT_SECONDS

        await stubs.runs.CancelRun(
            run_service_pb2.CancelRunRequest(thread_id=threads[0], run_id=hanging[0]), timeout=5
        )
        run = await wait_for_status(stubs, healthy_thread, healthy, TERMINAL, timeout=10)
        assert run.status == "completed", run
        # The queued hanging run was never sent upstream.
        assert upstream.request_count == workers + 1
        for thread_id, run_id in zip(threads[1:workers], hanging[1:], strict=True):
            await stubs.runs.CancelRun(
                run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id), timeout=5
            )
