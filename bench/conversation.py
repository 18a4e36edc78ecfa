"""Conversation benchmark: CreateThread, CreateMessage, RunThreadStream (a 50-token reply from
the fake upstream at zero latency) and ListMessages, at concurrency 1 and 32; then 256
RunThreadStreams at once, paced at 20 ms per token (about 1 s each when nothing queues).

It prints conversations/s, time to the first event and to the first token, server CPU per
conversation, stream durations and the server's peak RSS (VmHWM), on SQLite and on PostgreSQL.
Targets on a 2-core machine: <= 6 ms server CPU per conversation, the 256 paced streams with
p99 <= 1.2 s, peak RSS <= 200 MB. The fake upstream and the server are separate processes; the
client is this one.

For scale, it first measures two floors of the paced workload, the same 256 paced completions
(1) streamed by the server's own provider adapter (the openai SDK) in this process, with no
server, no gRPC and no database, and (2) relayed by a bare grpc.aio server
(`bench/floor_server.py --relay-upstream`) that sends them as deltas through RunThreadStream,
with no database and no run. No server built on that adapter and on grpc.aio can stream them
faster on this machine.

    python bench/conversation.py [--conversations 1000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import uvloop
from harness import (
    MODEL,
    ChildProcess,
    CpuMeter,
    Phase,
    channels,
    closed_loop,
    fresh_database,
    ms,
    peak_rss_mib,
    percentile,
    postgres_reachable,
    print_failures,
    print_table,
    scratch_dir,
    start_fake_upstream,
    start_server,
)

from assistants.v1 import (
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    message_service_pb2,
    message_service_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from assistants_grpc.adapters.providers.openai_compatible import OpenAICompatibleProvider
from assistants_grpc.ports.model_provider import ChatRequest, TextDelta

PACED_STREAMS = 256
PACED_TOKEN_MS = 20
REPLY_TOKENS = 50
# The fake sends its role chunk at once and token i at i * 20 ms, the closing chunks right behind
# the last: the ideal duration of one paced stream.
PACED_IDEAL_SECONDS = REPLY_TOKENS * PACED_TOKEN_MS / 1000
TARGET_CPU_MS = 6.0
TARGET_P99_SECONDS = 1.2
TARGET_RSS_MIB = 200.0


@dataclass
class StreamTimes:
    first_event: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    duration: list[float] = field(default_factory=list)
    events: int = 0
    not_completed: int = 0
    endings: Counter[str] = field(default_factory=Counter)
    """How streams that did not complete ended (their last event before `done`)."""


class ConversationClient:
    """The conversation's calls, each on the next channel in turn; with several targets
    (replicas), the channels cycle over all of them, as a round-robin balancer would."""

    def __init__(self, targets: list[str], channels_per_target: int) -> None:
        self.channels = [c for t in targets for c in channels(t, channels_per_target)]
        self.assistants = [
            assistant_service_pb2_grpc.AssistantServiceStub(c) for c in self.channels
        ]
        self.threads = [thread_service_pb2_grpc.ThreadServiceStub(c) for c in self.channels]
        self.messages = [message_service_pb2_grpc.MessageServiceStub(c) for c in self.channels]
        self.runs = [run_service_pb2_grpc.RunServiceStub(c) for c in self.channels]
        self._turn = itertools.count()
        self.assistant_id = ""
        self.times = StreamTimes()

    def _next(self) -> int:
        return next(self._turn) % len(self.channels)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def prepare(self) -> None:
        response = await self.assistants[0].CreateAssistant(
            assistant_service_pb2.CreateAssistantRequest(
                model=MODEL, name="bench", instructions="Answer briefly."
            )
        )
        self.assistant_id = response.assistant.id

    async def new_thread(self) -> str:
        thread = await self.threads[self._next()].CreateThread(
            thread_service_pb2.CreateThreadRequest()
        )
        await self.messages[self._next()].CreateMessage(
            message_service_pb2.CreateMessageRequest(
                thread_id=thread.thread.id,
                role="user",
                text="Tell me something about foxes, in fifty words.",
            )
        )
        return thread.thread.id

    async def stream_run(self, thread_id: str, model: str | None = None) -> None:
        request = run_service_pb2.RunThreadStreamRequest(
            thread_id=thread_id, assistant_id=self.assistant_id, model=model
        )
        started = time.perf_counter()
        first_event = first_token = math.nan
        ending = last_error = ""
        async for event in self.runs[self._next()].RunThreadStream(request):
            self.times.events += 1
            now = time.perf_counter()
            if math.isnan(first_event):
                first_event = now - started
            if math.isnan(first_token) and event.event == "thread.message.delta":
                first_token = now - started
            if event.event != "done":
                ending = event.event
            if event.event == "error":
                last_error = f"error event: {event.error.code}: {event.error.message}"
            elif event.event == "thread.run.failed":
                last_error = (
                    f"run failed: {event.run.last_error.code}: {event.run.last_error.message}"
                )
        self.times.duration.append(time.perf_counter() - started)
        self.times.first_event.append(first_event)
        self.times.first_token.append(first_token)
        if ending != "thread.run.completed":
            self.times.not_completed += 1
            detail = last_error or ending or "no events"
            self.times.endings[detail] += 1

    async def conversation(self, index: int) -> None:
        thread_id = await self.new_thread()
        await self.stream_run(thread_id)
        await self.messages[self._next()].ListMessages(
            message_service_pb2.ListMessagesRequest(thread_id=thread_id)
        )


@dataclass
class ConversationResult:
    label: str
    concurrency: int
    phase: Phase
    times: StreamTimes
    peak_rss: float


async def conversations(
    label: str, target: str, pid: int, upstream_pid: int, count: int, concurrency: int
) -> ConversationResult:
    client = ConversationClient([target], 1 if concurrency == 1 else 4)
    await client.prepare()
    await closed_loop("warm-up", client.conversation, min(50, count), concurrency, CpuMeter([]))
    client.times = StreamTimes()
    meter = CpuMeter([pid], others={"upstream": [upstream_pid]})
    phase = await closed_loop(label, client.conversation, count, concurrency, meter)
    await client.close()
    return ConversationResult(label, concurrency, phase, client.times, peak_rss_mib(pid))


async def paced_streams(label: str, target: str, pid: int, upstream_pid: int) -> ConversationResult:
    client = ConversationClient([target], 4)
    await client.prepare()
    threads: list[str] = []

    async def add_thread(index: int) -> None:
        threads.append(await client.new_thread())

    await closed_loop("threads", add_thread, PACED_STREAMS, 32, CpuMeter([]))
    model = f"{MODEL}@delay_ms={PACED_TOKEN_MS}"
    meter = CpuMeter([pid], others={"upstream": [upstream_pid]})
    meter.start()
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(client.stream_run(thread_id, model) for thread_id in threads), return_exceptions=True
    )
    errors: Counter[str] = Counter()
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            errors[f"{outcome.code().name}: {(outcome.details() or '')[:100]}"] += 1
        elif isinstance(outcome, BaseException):
            raise outcome
    seconds = time.perf_counter() - started
    meter.stop()
    await client.close()
    phase = Phase(
        label,
        len(client.times.duration),
        seconds,
        client.times.duration,
        meter.seconds,
        errors=sum(errors.values()),
        error_kinds=errors,
    )
    return ConversationResult(label, PACED_STREAMS, phase, client.times, peak_rss_mib(pid))


async def paced_provider_floor(upstream_url: str, upstream_pid: int) -> ConversationResult:
    """The paced workload through the provider adapter alone, in this process."""
    provider = OpenAICompatibleProvider.for_openai(
        label="floor", api_key="bench", base_url=upstream_url
    )
    request = ChatRequest(
        model=f"{MODEL}@delay_ms={PACED_TOKEN_MS}",
        messages=[{"role": "user", "content": "Tell me something about foxes, in fifty words."}],
    )
    times = StreamTimes()

    async def stream() -> None:
        started = time.perf_counter()
        first_token = math.nan
        async for event in provider.stream_chat(request):
            times.events += 1
            if math.isnan(first_token) and isinstance(event, TextDelta) and event.text:
                first_token = time.perf_counter() - started
        times.duration.append(time.perf_counter() - started)
        times.first_token.append(first_token)

    try:
        # Warm the connection pool as the server's is warm: one connection per stream.
        await asyncio.gather(*(stream() for _ in range(PACED_STREAMS)))
        times = StreamTimes()
        meter = CpuMeter([], others={"upstream": [upstream_pid]})
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(stream() for _ in range(PACED_STREAMS)))
        seconds = time.perf_counter() - started
        meter.stop()
    finally:
        await provider.aclose()
    label = "floor: provider adapter alone, paced"
    phase = Phase(label, PACED_STREAMS, seconds, times.duration, meter.seconds)
    return ConversationResult(label, PACED_STREAMS, phase, times, math.nan)


async def paced_relay_floor(upstream_url: str, upstream_pid: int, work: Path) -> ConversationResult:
    """The paced workload through a bare gRPC relay of the provider adapter."""
    relay = ChildProcess(
        "relay-floor",
        [
            sys.executable,
            str(Path(__file__).with_name("floor_server.py")),
            "--relay-upstream",
            upstream_url,
            "--window-ms",
            "200",
        ],
        r"listening on (\S+):(\d+)",
        work,
    )
    match = await relay.start()
    target = f"127.0.0.1:{match.group(2)}"
    label = "floor: bare gRPC relay, paced"
    try:
        client = ConversationClient([target], 4)
        model = f"{MODEL}@delay_ms={PACED_TOKEN_MS}"
        # Warm the relay's connection pool, as the server's is warm.
        await asyncio.gather(*(client.stream_run("none", model) for _ in range(PACED_STREAMS)))
        client.times = StreamTimes()
        meter = CpuMeter([relay.pid], others={"upstream": [upstream_pid]})
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(client.stream_run("none", model) for _ in range(PACED_STREAMS)))
        seconds = time.perf_counter() - started
        meter.stop()
        await client.close()
        peak_rss = peak_rss_mib(relay.pid)
    finally:
        relay.stop()
    times = client.times
    # The relay has no run to complete: a stream that reached `done` is whole.
    times.not_completed = 0
    times.endings.clear()
    phase = Phase(label, PACED_STREAMS, seconds, times.duration, meter.seconds)
    return ConversationResult(label, PACED_STREAMS, phase, times, peak_rss)


async def measure_backend(
    backend: str,
    database_url: str,
    upstream_url: str,
    upstream_pid: int,
    count: int,
    log_level: str,
    work: Path,
) -> list[ConversationResult]:
    results: list[ConversationResult] = []
    for worker_concurrency in (256, 64):
        server, target = await start_server(
            f"server-{backend}-{worker_concurrency}",
            database_url,
            work,
            log_level=log_level,
            upstream_base_url=upstream_url,
            extra=["--worker-concurrency", str(worker_concurrency)],
        )
        try:
            if worker_concurrency == 256:
                for concurrency in (1, 32):
                    n = max(100, count // 5) if concurrency == 1 else count
                    results.append(
                        await conversations(
                            f"{backend} conversations",
                            target,
                            server.pid,
                            upstream_pid,
                            n,
                            concurrency,
                        )
                    )
            results.append(
                await paced_streams(
                    f"{backend} paced, worker_concurrency={worker_concurrency}",
                    target,
                    server.pid,
                    upstream_pid,
                )
            )
        finally:
            server.stop()
    return results


def report(results: list[ConversationResult]) -> None:
    header = [
        "workload",
        "conc",
        "conv/s",
        "events/stream",
        "1st event p50 ms",
        "1st token p50 ms",
        "1st token p99 ms",
        "stream p50 ms",
        "stream p99 ms",
        "server CPU ms/conv",
        "client CPU ms/conv",
        "upstream CPU ms/conv",
        "peak RSS MiB",
        "failed",
    ]
    rows: list[list[object]] = []
    for r in results:
        rows.append(
            [
                r.label,
                r.concurrency,
                r.phase.rate,
                r.times.events / max(1, len(r.times.duration)),
                ms(percentile(r.times.first_event, 0.5)),
                ms(percentile(r.times.first_token, 0.5)),
                ms(percentile(r.times.first_token, 0.99)),
                ms(percentile(r.times.duration, 0.5)),
                ms(percentile(r.times.duration, 0.99)),
                round(r.phase.cpu_ms_per_operation(), 2),
                round(r.phase.cpu_ms_per_operation("client"), 2),
                round(r.phase.cpu_ms_per_operation("upstream"), 2),
                round(r.peak_rss, 1),
                r.phase.errors + r.times.not_completed,
            ]
        )
    print_table(
        f"Conversations ({REPLY_TOKENS}-token replies; paced: {PACED_STREAMS} streams at once, "
        f"{PACED_TOKEN_MS} ms per token, ideal {PACED_IDEAL_SECONDS:.2f} s)",
        header,
        rows,
    )
    for r in results:
        print_failures(r.label, r.phase.error_kinds + r.times.endings)
    for r in results:
        if r.concurrency == 32:
            cpu = r.phase.cpu_ms_per_operation()
            print(
                f"target ({r.label}): <= {TARGET_CPU_MS} ms server CPU per conversation: "
                f"{'met' if cpu <= TARGET_CPU_MS else 'missed'} ({cpu:.2f} ms)"
            )
        if r.concurrency == PACED_STREAMS and "worker_concurrency=256" in r.label:
            p99 = percentile(r.times.duration, 0.99)
            print(
                f"target ({r.label}): p99 <= {TARGET_P99_SECONDS} s: "
                f"{'met' if p99 <= TARGET_P99_SECONDS else 'missed'} ({p99:.3f} s); "
                f"peak RSS <= {TARGET_RSS_MIB:.0f} MB: "
                f"{'met' if r.peak_rss <= TARGET_RSS_MIB else 'missed'} ({r.peak_rss:.1f} MiB)"
            )


async def main(args: argparse.Namespace) -> None:
    backends = args.backends.split(",")
    if "postgres" in backends and not await postgres_reachable():
        print("PostgreSQL is unreachable: measuring SQLite only")
        backends = [b for b in backends if b != "postgres"]
    results: list[ConversationResult] = []
    with scratch_dir("assistants-bench-conversation-") as work:
        upstream, upstream_url = await start_fake_upstream(work, reply_tokens=REPLY_TOKENS)
        try:
            results.append(await paced_provider_floor(upstream_url, upstream.pid))
            results.append(await paced_relay_floor(upstream_url, upstream.pid, work))
            for backend in backends:
                if backend == "sqlite":
                    url = f"sqlite:///{work / 'conversation.db'}"
                    results += await measure_backend(
                        backend,
                        url,
                        upstream_url,
                        upstream.pid,
                        args.conversations,
                        args.log_level,
                        work,
                    )
                else:
                    async with fresh_database("assistants_bench_conversation") as url:
                        results += await measure_backend(
                            backend,
                            url,
                            upstream_url,
                            upstream.pid,
                            args.conversations,
                            args.log_level,
                            work,
                        )
        finally:
            upstream.stop()
    report(results)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--conversations", type=int, default=1000, help="conversations at concurrency 32"
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--log-level", default="INFO", help="the server's log level")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
