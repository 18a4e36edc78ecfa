"""What the fault, recovery and drain tests share: model routes to the fake upstream, and waits
on calls, runs and streams that poll or read with a timeout instead of sleeping."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from assistants.v1 import (
    assistant_service_pb2,
    common_pb2,
    message_pb2,
    message_service_pb2,
    run_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants.v1.run_stream_event_pb2 import RunStreamEvent

from ..support.stubs import Stubs

T = TypeVar("T")

# Runs name their model `fake-...`; a `@SPEC` suffix picks the fake upstream's behaviour.
MODEL = "fake-model"
UPSTREAM_KEY_ENV = "ASSISTANTS_TEST_FAKE_UPSTREAM_KEY"
UPSTREAM_KEY = "fake-key"
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})

RunStream = grpc.aio.UnaryStreamCall[Any, RunStreamEvent]


def serve_flags(database_url: str, models: str, **flags: object) -> list[str]:
    """Flags of `assistants-grpc serve` for a test server: quick leases and polling, quiet
    logs; `flags` add or override (`lease_seconds=5` is `--lease-seconds 5`)."""
    values: dict[str, object] = {
        "database_url": database_url,
        "models": models,
        "lease_seconds": 2,
        "poll_interval_seconds": 0.2,
        "grace_period_seconds": 2,
        "log_level": "WARNING",
        **flags,
    }
    args = ["--no-log-json"]
    for name, value in values.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


def model_routes(base_url: str, *extra: dict[str, Any], **route: Any) -> str:
    """The model list: `fake-*` on the fake upstream (with `route` fields), after `extra`
    routes, which come first so that they win."""
    default: dict[str, Any] = {
        "name": "fake-*",
        "provider": "openai_compatible",
        "base_url": base_url,
        "api_key_env": UPSTREAM_KEY_ENV,
        # A failure must show as a failure, not as a second call the test did not expect.
        "max_retries": 0,
    }
    return json.dumps([*extra, {**default, **route}])


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float, failure: str, interval: float = 0.05
) -> T:
    """Polls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} within {timeout} s")
        await asyncio.sleep(interval)


# A function tool; the fake upstream calls the first tool of a request when told `tools=N`.
LOOKUP_TOOL = common_pb2.Tool(
    type="function",
    function=common_pb2.FunctionTool(
        name="lookup",
        parameters=struct_pb2.Struct(fields={"type": struct_pb2.Value(string_value="object")}),
    ),
)


async def new_assistant(
    stubs: Stubs, model: str = MODEL, tools: Sequence[common_pb2.Tool] = ()
) -> str:
    response = await stubs.assistants.CreateAssistant(
        assistant_service_pb2.CreateAssistantRequest(model=model, name="faults", tools=tools),
        timeout=5,
    )
    return response.assistant.id


async def new_thread(stubs: Stubs, text: str = "Hello there.") -> str:
    """A thread holding one user message."""
    response = await stubs.threads.CreateThread(
        thread_service_pb2.CreateThreadRequest(
            messages=[message_pb2.MessageInput(role="user", text=text)]
        ),
        timeout=5,
    )
    return response.thread.id


async def create_run(
    stubs: Stubs, thread_id: str, assistant_id: str, model: str | None = None
) -> str:
    request = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
    if model is not None:
        request.model = model
    response = await stubs.runs.CreateRun(request, timeout=5)
    return response.run.id


async def get_run(stubs: Stubs, thread_id: str, run_id: str) -> run_pb2.Run:
    response = await stubs.runs.GetRun(
        run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id), timeout=5
    )
    return response.run


async def wait_for_status(
    stubs: Stubs, thread_id: str, run_id: str, statuses: frozenset[str], timeout: float
) -> run_pb2.Run:
    async def reached() -> run_pb2.Run | None:
        run = await get_run(stubs, thread_id, run_id)
        return run if run.status in statuses else None

    return await eventually(reached, timeout, f"run {run_id} did not reach {sorted(statuses)}")


def subscribe(stubs: Stubs, thread_id: str, run_id: str, after: int = 0) -> RunStream:
    call: RunStream = stubs.runs.SubscribeRun(
        run_service_pb2.SubscribeRunRequest(
            thread_id=thread_id, run_id=run_id, after_sequence_number=after
        )
    )
    return call


async def read_until(call: RunStream, event_name: str, timeout: float) -> list[RunStreamEvent]:
    """Reads a run stream up to and including the first event named `event_name`."""
    events: list[RunStreamEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                raise AssertionError(
                    f"the stream ended before {event_name!r}: {[e.event for e in events]}"
                )
            assert isinstance(event, RunStreamEvent)
            events.append(event)
            if event.event == event_name:
                return events


async def read_to_end(call: RunStream, timeout: float) -> list[RunStreamEvent]:
    """Every event until the server ends the stream (with OK: an error status raises)."""
    events: list[RunStreamEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return events
            assert isinstance(event, RunStreamEvent)
            events.append(event)


async def health_status(stubs: Stubs, service: str = "") -> int:
    response = await stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = response.status
    return status


def names(events: Sequence[RunStreamEvent]) -> list[str]:
    return [event.event for event in events]


def assert_contiguous(events: Sequence[RunStreamEvent], first: int = 1) -> None:
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(first, first + len(events))), numbers


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    """The call's result and how long it took, in seconds."""
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


def list_messages_request(thread_id: str) -> message_service_pb2.ListMessagesRequest:
    return message_service_pb2.ListMessagesRequest(thread_id=thread_id, limit=100, order="asc")


MetricSamples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Prometheus samples by name and labels."""


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


async def scrape_metrics(port: int) -> MetricSamples:
    """Every sample the Prometheus endpoint on 127.0.0.1:`port` serves."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(5)) as got,
    ):
        assert got.status == 200
        text = await got.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
