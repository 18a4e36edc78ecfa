"""Soak test: mixed traffic against the real server for minutes on end, to show that nothing
leaks and nothing fails that should not.

It starts `assistants-grpc serve` and the fake model upstream as separate processes on the
loopback address, then keeps `--concurrency` callers busy for `--minutes` with a weighted mix
of scenarios: resource calls (threads, messages, assistants), streamed runs, runs cancelled
while queued or streaming, function-tool round trips, runs the upstream fails (rate limits,
errors, hangs, broken and dropped streams), and streams dropped by the client and resumed with
SubscribeRun. Every scenario deletes its thread, so the database stays small.

While it runs it prints the server's resident memory, open file descriptors and threads (from
/proc) every `--sample-seconds`; at the end, errors by RPC and status code (expected ones, such
as a cancel that lost the race with the run's end, apart from unexpected ones), scenario
outcomes, latency percentiles per RPC, and whether memory and descriptors stayed flat after
the warm-up. The exit status is 1 when anything unexpected happened or a resource grew.

    python bench/soak.py [--minutes 10] [--concurrency 64] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import uvloop
from google.protobuf import struct_pb2
from harness import (
    ChildProcess,
    channels,
    fresh_database,
    ms,
    percentile,
    postgres_reachable,
    print_table,
    rss_mib,
    scratch_dir,
    server_executable,
)

from assistants.v1 import (
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
    message_pb2,
    message_service_pb2,
    message_service_pb2_grpc,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from assistants.v1.run_stream_event_pb2 import RunStreamEvent

T = TypeVar("T")

MODEL = "soak-model"
UPSTREAM_KEY_ENV = "ASSISTANTS_SOAK_FAKE_KEY"
# Every call carries a deadline; a scenario that outlives this is itself an error.
CALL_TIMEOUT_SECONDS = 30.0
SCENARIO_TIMEOUT_SECONDS = 90.0
# The route gives up on a silent upstream after this long (hangs and stalls end so).
ROUTE_TIMEOUT_SECONDS = 2.0
# Latencies kept per RPC (a uniform sample beyond that), so the client's memory is bounded.
LATENCY_SAMPLES = 200_000
# Faults the upstream is told to commit, and the `last_error.code` each run must end with.
FAULTS = {
    "429": "rate_limit_exceeded",
    "500": "server_error",
    "503": "server_error",
    "hang": "server_error",
    "stall=3": "server_error",
    "drop=3": "server_error",
    "malformed=3": "server_error",
    "error_event=3": "server_error",
}
LOOKUP_TOOL = common_pb2.Tool(
    type="function",
    function=common_pb2.FunctionTool(
        name="lookup",
        parameters=struct_pb2.Struct(fields={"type": struct_pb2.Value(string_value="object")}),
    ),
)


# --- recording ----------------------------------------------------------------------------


class ScenarioFailed(Exception):
    """A scenario saw an unexpected error or outcome (already recorded); it stops there."""


@dataclass
class Recorder:
    rng: random.Random
    latencies: dict[str, list[float]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    expected: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    scenarios: Counter[tuple[str, bool]] = field(default_factory=Counter)

    def latency(self, name: str, seconds: float) -> None:
        self.calls[name] += 1
        kept = self.latencies.setdefault(name, [])
        if len(kept) < LATENCY_SAMPLES:
            kept.append(seconds)
        else:
            slot = self.rng.randrange(self.calls[name])
            if slot < LATENCY_SAMPLES:
                kept[slot] = seconds

    def problem(self, name: str, kind: str, detail: str) -> ScenarioFailed:
        self.unexpected[(name, kind)] += 1
        self.examples.setdefault((name, kind), detail[:300])
        return ScenarioFailed(f"{name}: {kind}")

    def check(self, name: str, condition: bool, kind: str, detail: object) -> None:
        if not condition:
            raise self.problem(name, kind, str(detail))

    async def call(
        self, name: str, make: Callable[[], Awaitable[T]], expected: frozenset[str] = frozenset()
    ) -> T | None:
        """The call's response; None when it failed with a code in `expected`."""
        started = time.perf_counter()
        try:
            response = await make()
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            if code in expected:
                self.expected[(name, code)] += 1
                return None
            raise self.problem(name, code, error.details() or "") from None
        self.latency(name, time.perf_counter() - started)
        return response

    async def stream(
        self,
        name: str,
        call: grpc.aio.UnaryStreamCall[Any, RunStreamEvent],
        *,
        stop_after: int | None = None,
    ) -> list[RunStreamEvent]:
        """The stream's events, to its end (or the first `stop_after`, then the call is
        cancelled); records the time to the first event and to the end."""
        started = time.perf_counter()
        events: list[RunStreamEvent] = []
        try:
            async for event in call:
                if not events:
                    self.latency(f"{name} (first event)", time.perf_counter() - started)
                events.append(event)
                if stop_after is not None and len(events) >= stop_after:
                    call.cancel()
                    return events
        except grpc.aio.AioRpcError as error:
            raise self.problem(name, error.code().name, error.details() or "") from None
        self.latency(f"{name} (whole)", time.perf_counter() - started)
        return events


# --- the scenarios --------------------------------------------------------------------------


@dataclass
class Stubs:
    assistants: assistant_service_pb2_grpc.AssistantServiceAsyncStub
    threads: thread_service_pb2_grpc.ThreadServiceAsyncStub
    messages: message_service_pb2_grpc.MessageServiceAsyncStub
    runs: run_service_pb2_grpc.RunServiceAsyncStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            assistants=assistant_service_pb2_grpc.AssistantServiceStub(channel),
            threads=thread_service_pb2_grpc.ThreadServiceStub(channel),
            messages=message_service_pb2_grpc.MessageServiceStub(channel),
            runs=run_service_pb2_grpc.RunServiceStub(channel),
        )


def _user_message(text: str) -> message_pb2.MessageInput:
    return message_pb2.MessageInput(role="user", text=text)


def _names(events: Sequence[RunStreamEvent]) -> list[str]:
    return [event.event for event in events]


class Scenarios:
    def __init__(
        self,
        stubs: Stubs,
        recorder: Recorder,
        rng: random.Random,
        assistants: list[str],
        tool_assistant: str,
    ) -> None:
        self.s = stubs
        self.rec = recorder
        self.rng = rng
        self.assistants = assistants
        self.tool_assistant = tool_assistant

    # Helpers ---------------------------------------------------------------------------------

    async def _thread(self, messages: int = 1) -> str:
        response = await self.rec.call(
            "CreateThread",
            lambda: self.s.threads.CreateThread(
                thread_service_pb2.CreateThreadRequest(
                    messages=[_user_message(f"Question {i}?") for i in range(messages)],
                    metadata={"soak": "1"},
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            ),
        )
        assert response is not None
        return response.thread.id

    async def _delete(self, thread_id: str) -> None:
        await self.rec.call(
            "DeleteThread",
            lambda: self.s.threads.DeleteThread(
                thread_service_pb2.DeleteThreadRequest(thread_id=thread_id),
                timeout=CALL_TIMEOUT_SECONDS,
            ),
        )

    async def _run_thread(self, thread_id: str, assistant_id: str, model: str) -> run_pb2.Run:
        response = await self.rec.call(
            "RunThread",
            lambda: self.s.runs.RunThread(
                run_service_pb2.RunThreadRequest(
                    thread_id=thread_id, assistant_id=assistant_id, model=model
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            ),
        )
        assert response is not None
        return response.run

    def _ends(self, name: str, events: Sequence[RunStreamEvent], last_run_event: str) -> None:
        names = _names(events)
        self.rec.check(name, names[-2:] == [last_run_event, "done"], "UNEXPECTED_END", names[-4:])
        numbers = [event.sequence_number for event in events]
        self.rec.check(
            name,
            numbers == list(range(numbers[0], numbers[0] + len(numbers))),
            "SEQUENCE_GAP",
            numbers,
        )

    # The mix ---------------------------------------------------------------------------------

    async def resources(self) -> None:
        """Threads and messages created, read, listed, updated and deleted; assistants read."""
        thread_id = await self._thread(messages=2)
        try:
            await self.rec.call(
                "CreateMessage",
                lambda: self.s.messages.CreateMessage(
                    message_service_pb2.CreateMessageRequest(
                        thread_id=thread_id, role="user", text="And another thing."
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            listed = await self.rec.call(
                "ListMessages",
                lambda: self.s.messages.ListMessages(
                    message_service_pb2.ListMessagesRequest(thread_id=thread_id, limit=10),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            assert listed is not None
            self.rec.check("ListMessages", len(listed.data) == 3, "WRONG_COUNT", len(listed.data))
            await self.rec.call(
                "GetMessage",
                lambda: self.s.messages.GetMessage(
                    message_service_pb2.GetMessageRequest(
                        thread_id=thread_id, message_id=listed.data[0].id
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            await self.rec.call(
                "UpdateThread",
                lambda: self.s.threads.UpdateThread(
                    thread_service_pb2.UpdateThreadRequest(
                        thread_id=thread_id, metadata={"soak": "2"}
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            await self.rec.call(
                "GetThread",
                lambda: self.s.threads.GetThread(
                    thread_service_pb2.GetThreadRequest(thread_id=thread_id),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            assistant_id = self.rng.choice(self.assistants)
            await self.rec.call(
                "GetAssistant",
                lambda: self.s.assistants.GetAssistant(
                    assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            await self.rec.call(
                "ListAssistants",
                lambda: self.s.assistants.ListAssistants(
                    assistant_service_pb2.ListAssistantsRequest(limit=20),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
        finally:
            await self._delete(thread_id)

    async def streamed_run(self) -> None:
        """A thread and its run in one streamed call, read to the end."""
        call = self.s.runs.CreateThreadAndRunStream(
            run_service_pb2.CreateThreadAndRunStreamRequest(
                assistant_id=self.rng.choice(self.assistants),
                thread=thread_pb2.ThreadInput(messages=[_user_message("Tell me a story.")]),
                model=MODEL,
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        events = await self.rec.stream("CreateThreadAndRunStream", call)
        thread_ids = [event.run.thread_id for event in events if event.HasField("run")]
        self.rec.check("CreateThreadAndRunStream", bool(thread_ids), "NO_RUN", _names(events))
        try:
            self._ends("CreateThreadAndRunStream", events, "thread.run.completed")
        finally:
            await self._delete(thread_ids[0])

    async def cancelled_run(self) -> None:
        """A slow run cancelled while queued or while streaming; its stream ends cancelled."""
        thread_id = await self._thread()
        try:
            created = await self.rec.call(
                "CreateRun",
                lambda: self.s.runs.CreateRun(
                    run_service_pb2.CreateRunRequest(
                        thread_id=thread_id,
                        assistant_id=self.rng.choice(self.assistants),
                        model=f"{MODEL}@tokens=400,delay_ms=10",
                    ),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
            )
            assert created is not None
            run_id = created.run.id
            follow = self.s.runs.SubscribeRun(
                run_service_pb2.SubscribeRunRequest(thread_id=thread_id, run_id=run_id),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            if self.rng.random() < 0.5:
                # Let it start streaming first.
                async for event in follow:
                    if event.event == "thread.message.delta":
                        break
            # A run that ended first cannot be cancelled: FAILED_PRECONDITION is then right.
            cancelled = await self.rec.call(
                "CancelRun",
                lambda: self.s.runs.CancelRun(
                    run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id),
                    timeout=CALL_TIMEOUT_SECONDS,
                ),
                expected=frozenset({"FAILED_PRECONDITION"}),
            )
            if cancelled is not None:
                self.rec.check(
                    "CancelRun",
                    cancelled.run.status in ("cancelling", "cancelled"),
                    "WRONG_STATUS",
                    cancelled.run.status,
                )
            ending = "thread.run.completed" if cancelled is None else "thread.run.cancelled"
            rest = await self.rec.stream("SubscribeRun", follow)
            names = _names(rest)
            self.rec.check("SubscribeRun", names[-2:] == [ending, "done"], "WRONG_END", names[-4:])
        finally:
            await self._delete(thread_id)

    async def tool_round_trip(self) -> None:
        """A run that calls two functions, answered with SubmitToolOutputsStream."""
        thread_id = await self._thread()
        try:
            run = await self._run_thread(thread_id, self.tool_assistant, f"{MODEL}@tools=2")
            self.rec.check("RunThread", run.status == "requires_action", "WRONG_STATUS", run.status)
            calls = run.required_action.submit_tool_outputs.tool_calls
            self.rec.check("RunThread", len(calls) == 2, "WRONG_CALLS", len(calls))
            stream = self.s.runs.SubmitToolOutputsStream(
                run_service_pb2.SubmitToolOutputsStreamRequest(
                    thread_id=thread_id,
                    run_id=run.id,
                    tool_outputs=[
                        run_service_pb2.ToolOutput(tool_call_id=c.id, output='{"answer": 42}')
                        for c in calls
                    ],
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            events = await self.rec.stream("SubmitToolOutputsStream", stream)
            self._ends("SubmitToolOutputsStream", events, "thread.run.completed")
        finally:
            await self._delete(thread_id)

    async def failing_upstream(self) -> None:
        """A run whose upstream fails in one of the ways it can; it must end failed with the
        matching code."""
        spec = self.rng.choice(list(FAULTS))
        thread_id = await self._thread()
        try:
            run = await self._run_thread(
                thread_id, self.rng.choice(self.assistants), f"{MODEL}@{spec}"
            )
            outcome = (run.status, run.last_error.code)
            name = f"run (upstream {spec})"
            self.rec.check(name, outcome == ("failed", FAULTS[spec]), "WRONG_OUTCOME", outcome)
            # The failure the upstream was told to commit, reported as the run's last_error.
            self.rec.expected[(name, f"last_error={run.last_error.code}")] += 1
        finally:
            await self._delete(thread_id)

    async def resumed_stream(self) -> None:
        """A client drops its RunThreadStream after a few events and resumes with
        SubscribeRun from the last one, losing nothing."""
        thread_id = await self._thread()
        try:
            call = self.s.runs.RunThreadStream(
                run_service_pb2.RunThreadStreamRequest(
                    thread_id=thread_id,
                    assistant_id=self.rng.choice(self.assistants),
                    model=f"{MODEL}@tokens=60,delay_ms=5",
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            first = await self.rec.stream("RunThreadStream", call, stop_after=4)
            resumed = self.s.runs.SubscribeRun(
                run_service_pb2.SubscribeRunRequest(
                    thread_id=thread_id,
                    run_id=first[0].run.id,
                    after_sequence_number=first[-1].sequence_number,
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            rest = await self.rec.stream("SubscribeRun", resumed)
            self._ends("SubscribeRun", [*first, *rest], "thread.run.completed")
        finally:
            await self._delete(thread_id)


SCENARIO_WEIGHTS = {
    "resources": 40,
    "streamed_run": 25,
    "cancelled_run": 10,
    "tool_round_trip": 10,
    "failing_upstream": 10,
    "resumed_stream": 5,
}


# --- the run --------------------------------------------------------------------------------


@dataclass
class Sample:
    elapsed: float
    rss_mib: float
    descriptors: int
    threads: int
    scenarios: int
    unexpected: int


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def model_routes(base_url: str) -> str:
    return json.dumps(
        [
            {
                "name": f"{MODEL}*",
                "provider": "openai_compatible",
                "base_url": base_url,
                "api_key_env": UPSTREAM_KEY_ENV,
                "timeout_seconds": ROUTE_TIMEOUT_SECONDS,
                "max_retries": 1,
                "retry_backoff_seconds": 0.05,
                "retry_max_backoff_seconds": 0.2,
            }
        ]
    )


@contextlib.asynccontextmanager
async def database(backend: str, scratch: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{scratch / 'soak.db'}"
        return
    if not await postgres_reachable():
        raise SystemExit("soak: PostgreSQL is not reachable")
    async with fresh_database("assistants_soak") as url:
        yield url


async def soak(args: argparse.Namespace) -> int:
    duration = args.minutes * 60
    with scratch_dir("assistants-soak-") as scratch:
        upstream = ChildProcess(
            "fake-upstream",
            [
                sys.executable,
                "-m",
                "assistants_grpc.testing.fake_upstream",
                "--port",
                "0",
                "--reply-tokens",
                "20",
                "--token-delay-ms",
                "2",
                "--record-limit",
                "0",
            ],
            r"(http://127\.0\.0\.1:\d+/v1)",
            scratch,
        )
        base_url = (await upstream.start()).group(1)
        try:
            async with database(args.backend, scratch) as database_url:
                server = ChildProcess(
                    "server",
                    [
                        *server_executable(),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--database-url",
                        database_url,
                        "--models",
                        model_routes(base_url),
                        "--log-level",
                        "WARNING",
                        "--grace-period-seconds",
                        "5",
                    ],
                    r"listening on (\S+):(\d+)",
                    scratch,
                    env={UPSTREAM_KEY_ENV: "soak"},
                )
                target = f"127.0.0.1:{(await server.start()).group(2)}"
                try:
                    return await drive(args, duration, target, server, upstream)
                finally:
                    server.stop()
        finally:
            upstream.stop()


async def drive(
    args: argparse.Namespace,
    duration: float,
    target: str,
    server: ChildProcess,
    upstream: ChildProcess,
) -> int:
    print(
        f"soak: {args.minutes:g} min, concurrency {args.concurrency}, {args.backend}, "
        f"server pid {server.pid}, upstream pid {upstream.pid}",
        flush=True,
    )
    pool = channels(target, max(1, args.concurrency // 8))
    recorder = Recorder(rng=random.Random(args.seed + 1))
    setup = Stubs.on(pool[0])
    assistants: list[str] = []
    for index in range(8):
        created = await setup.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(
                model=MODEL, name=f"soak-{index}", instructions="Answer briefly."
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        assistants.append(created.assistant.id)
    tool_assistant = (
        await setup.assistants.CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(
                model=MODEL, name="soak-tools", tools=[LOOKUP_TOOL]
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
    ).assistant.id

    started = time.monotonic()
    deadline = started + duration
    finished = 0
    names = list(SCENARIO_WEIGHTS)
    weights = list(SCENARIO_WEIGHTS.values())

    async def caller(index: int) -> None:
        nonlocal finished
        own = random.Random(args.seed * 1000 + index)
        scenarios = Scenarios(
            Stubs.on(pool[index % len(pool)]), recorder, own, assistants, tool_assistant
        )
        while time.monotonic() < deadline and finished < args.max_scenarios:
            name = own.choices(names, weights)[0]
            ok = True
            try:
                async with asyncio.timeout(SCENARIO_TIMEOUT_SECONDS):
                    await getattr(scenarios, name)()
            except ScenarioFailed:
                ok = False
            except TimeoutError:
                recorder.problem(name, "SCENARIO_TIMEOUT", "")
                ok = False
            finished += 1
            recorder.scenarios[(name, ok)] += 1

    samples: list[Sample] = []

    async def sampler() -> None:
        while True:
            samples.append(
                Sample(
                    elapsed=time.monotonic() - started,
                    rss_mib=rss_mib(server.pid),
                    descriptors=open_descriptors(server.pid),
                    threads=thread_count(server.pid),
                    scenarios=finished,
                    unexpected=sum(recorder.unexpected.values()),
                )
            )
            s = samples[-1]
            print(
                f"  {s.elapsed:7.0f} s  RSS {s.rss_mib:7.1f} MiB  fds {s.descriptors:4d}  "
                f"threads {s.threads:3d}  scenarios {s.scenarios:7d}  unexpected {s.unexpected}",
                flush=True,
            )
            await asyncio.sleep(args.sample_seconds)

    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(caller(i) for i in range(args.concurrency)))
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    elapsed = time.monotonic() - started
    samples.append(
        Sample(
            elapsed,
            rss_mib(server.pid),
            open_descriptors(server.pid),
            thread_count(server.pid),
            finished,
            sum(recorder.unexpected.values()),
        )
    )
    for channel in pool:
        await channel.close()

    # A clean drain is part of the result: SIGTERM, exit code 0 within the grace period.
    assert server.process is not None
    drain_started = time.monotonic()
    server.process.send_signal(15)
    exit_code = await asyncio.to_thread(server.process.wait, 30)
    drain_seconds = time.monotonic() - drain_started
    return report(args, recorder, samples, elapsed, exit_code, drain_seconds)


def report(
    args: argparse.Namespace,
    recorder: Recorder,
    samples: list[Sample],
    elapsed: float,
    exit_code: int,
    drain_seconds: float,
) -> int:
    scenario_rows = [
        (
            name,
            recorder.scenarios[(name, True)] + recorder.scenarios[(name, False)],
            recorder.scenarios[(name, False)],
        )
        for name in SCENARIO_WEIGHTS
    ]
    total = sum(row[1] for row in scenario_rows)
    print_table(
        f"Scenarios: {total} in {elapsed:.0f} s ({total / elapsed:.1f}/s)",
        ("scenario", "count", "failed"),
        scenario_rows,
    )
    print_table(
        "Latency per RPC (ms; streams: to the first event, and to the end)",
        ("rpc", "calls", "p50", "p99", "max"),
        [
            (
                name,
                recorder.calls[name],
                ms(statistics.median(values)),
                ms(percentile(values, 0.99)),
                ms(max(values)),
            )
            for name, values in sorted(recorder.latencies.items())
        ],
    )
    print("\nErrors by RPC and code (for runs failed on purpose: by last_error)")
    for label, counts in (("expected", recorder.expected), ("unexpected", recorder.unexpected)):
        if not counts:
            print(f"  {label}: none")
        for (name, code), count in counts.most_common():
            example = recorder.examples.get((name, code), "")
            print(f"  {label}: {name} {code} x {count}" + (f"  ({example})" if example else ""))

    # Resources after the warm-up: the first sample past it against the last.
    warm = [s for s in samples if s.elapsed >= args.warm_up_fraction * elapsed]
    first, last = (warm[0], warm[-1]) if warm else (samples[0], samples[-1])
    rss_growth = last.rss_mib - first.rss_mib
    fd_growth = last.descriptors - first.descriptors
    rss_limit = max(args.rss_slack_mib, first.rss_mib * 0.10)
    print(
        f"\nServer after warm-up ({first.elapsed:.0f} s -> {last.elapsed:.0f} s): "
        f"RSS {first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB ({rss_growth:+.1f}; peak "
        f"{max(s.rss_mib for s in samples):.1f}), descriptors {first.descriptors} -> "
        f"{last.descriptors} ({fd_growth:+d}), threads {first.threads} -> {last.threads}"
    )
    print(f"Drain on SIGTERM: exit code {exit_code} after {drain_seconds:.2f} s")
    verdicts = {
        "no unexpected errors": not recorder.unexpected,
        f"RSS growth within {rss_limit:.0f} MiB": rss_growth <= rss_limit,
        f"descriptor growth within {args.fd_slack}": fd_growth <= args.fd_slack,
        "clean drain (exit 0)": exit_code == 0,
        "work done": total > 0 and not math.isnan(total / elapsed),
    }
    for verdict, held in verdicts.items():
        print(f"  {'PASS' if held else 'FAIL'}  {verdict}")
    return 0 if all(verdicts.values()) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--concurrency", type=int, default=64, help="callers at once")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--max-scenarios", type=int, default=5_000_000, help="stop after this many scenarios"
    )
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument(
        "--warm-up-fraction",
        type=float,
        default=0.2,
        help="the share of the run before resources are expected to be flat",
    )
    parser.add_argument("--rss-slack-mib", type=float, default=16.0)
    parser.add_argument("--fd-slack", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main() -> None:
    sys.exit(uvloop.run(soak(parse_args())))


if __name__ == "__main__":
    main()
