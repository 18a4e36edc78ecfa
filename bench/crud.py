"""CRUD benchmark: CreateThread, CreateMessage, GetThread and ListMessages against the real
`assistants-grpc serve` process, at concurrency 1 and 32, on SQLite and on PostgreSQL, with the
default INFO log (one access-log line per call) and with WARNING.

It prints calls/s, p50/p99 latency and the server's CPU per call (from /proc/<pid>/stat), next
to the same figures for the floor: the health Check of a bare grpc.aio server process, an
empty unary call. The target is server CPU per CRUD call within 2x of that floor on SQLite.
The client runs in this process; every server is a separate one.

    python bench/crud.py [--calls 3000] [--backends sqlite,postgres] [--log-levels INFO,WARNING]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import (
    ChildProcess,
    CpuMeter,
    Phase,
    channels,
    closed_loop,
    fresh_database,
    median,
    ms,
    percentile,
    postgres_reachable,
    print_failures,
    print_table,
    scratch_dir,
    start_server,
)

from assistants.v1 import (
    message_service_pb2,
    message_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
)

CONCURRENCIES = (1, 32)
# Threads the message phases spread over: GetThread and ListMessages read them back.
THREAD_POOL = 64
WARM_UP_CALLS = 300


@dataclass
class Row:
    backend: str
    log_level: str
    operation: str
    concurrency: int
    phase: Phase


Operation = Callable[[int], Awaitable[None]]


class CrudClient:
    """The four CRUD calls over a few channels, each call on the next channel in turn."""

    def __init__(self, target: str, channel_count: int) -> None:
        self.channels = channels(target, channel_count)
        self.threads = [thread_service_pb2_grpc.ThreadServiceStub(c) for c in self.channels]
        self.messages = [message_service_pb2_grpc.MessageServiceStub(c) for c in self.channels]
        self.health = [health_pb2_grpc.HealthStub(c) for c in self.channels]
        self.thread_ids: list[str] = []

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    def _pick(self, index: int) -> int:
        return index % len(self.channels)

    async def create_thread(self, index: int) -> None:
        await self.threads[self._pick(index)].CreateThread(
            thread_service_pb2.CreateThreadRequest(metadata={"bench": "crud"})
        )

    async def create_message(self, index: int) -> None:
        await self.messages[self._pick(index)].CreateMessage(
            message_service_pb2.CreateMessageRequest(
                thread_id=self.thread_ids[index % len(self.thread_ids)],
                role="user",
                text="What is the weather like in Lisbon today?",
            )
        )

    async def get_thread(self, index: int) -> None:
        await self.threads[self._pick(index)].GetThread(
            thread_service_pb2.GetThreadRequest(
                thread_id=self.thread_ids[index % len(self.thread_ids)]
            )
        )

    async def list_messages(self, index: int) -> None:
        await self.messages[self._pick(index)].ListMessages(
            message_service_pb2.ListMessagesRequest(
                thread_id=self.thread_ids[index % len(self.thread_ids)]
            )
        )

    async def health_check(self, index: int) -> None:
        await self.health[self._pick(index)].Check(health_pb2.HealthCheckRequest())

    async def prepare(self) -> None:
        """Threads, each holding enough messages for a full ListMessages page."""
        responses = await asyncio.gather(
            *(
                self.threads[0].CreateThread(thread_service_pb2.CreateThreadRequest())
                for _ in range(THREAD_POOL)
            )
        )
        self.thread_ids = [r.thread.id for r in responses]
        # In batches: grpc cancels calls beyond ~1000 waiting at once on one server.
        await closed_loop("prepare", self.create_message, THREAD_POOL * 20, 32, CpuMeter([]))


def channel_count(concurrency: int) -> int:
    return 1 if concurrency == 1 else 4


async def measure(
    label: str, operation: Operation, calls: int, concurrency: int, pid: int
) -> Phase:
    warm = min(WARM_UP_CALLS, calls)
    await closed_loop("warm-up", operation, warm, concurrency, CpuMeter([pid]))
    return await closed_loop(label, operation, calls, concurrency, CpuMeter([pid]))


async def measure_floor(calls: int, log_dir: Path) -> dict[int, Phase]:
    floor = ChildProcess(
        "floor",
        [sys.executable, str(Path(__file__).with_name("floor_server.py"))],
        r"listening on (\S+):(\d+)",
        log_dir,
    )
    match = await floor.start()
    target = f"127.0.0.1:{match.group(2)}"
    results: dict[int, Phase] = {}
    try:
        for concurrency in CONCURRENCIES:
            client = CrudClient(target, channel_count(concurrency))
            results[concurrency] = await measure(
                "floor", client.health_check, calls, concurrency, floor.pid
            )
            await client.close()
    finally:
        floor.stop()
    return results


async def measure_server(
    backend: str, database_url: str, log_level: str, calls: int, log_dir: Path
) -> list[Row]:
    server, target = await start_server(
        f"server-{backend}-{log_level.lower()}", database_url, log_dir, log_level=log_level
    )
    rows: list[Row] = []
    try:
        for concurrency in CONCURRENCIES:
            client = CrudClient(target, channel_count(concurrency))
            await client.prepare()
            operations: list[tuple[str, Operation]] = [
                ("Health.Check", client.health_check),
                ("CreateThread", client.create_thread),
                ("CreateMessage", client.create_message),
                ("GetThread", client.get_thread),
                ("ListMessages", client.list_messages),
            ]
            for name, operation in operations:
                phase = await measure(name, operation, calls, concurrency, server.pid)
                rows.append(Row(backend, log_level, name, concurrency, phase))
            await client.close()
    finally:
        server.stop()
    return rows


def report(floor: dict[int, Phase], rows: list[Row]) -> None:
    header = [
        "backend",
        "log",
        "call",
        "conc",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms/call",
        "x floor",
        "client CPU ms/call",
    ]
    table: list[list[object]] = []
    for concurrency, phase in floor.items():
        table.append(_row("bare grpc.aio", "-", "Health.Check", concurrency, phase, phase))
    for row in rows:
        table.append(
            _row(
                row.backend,
                row.log_level,
                row.operation,
                row.concurrency,
                row.phase,
                floor[row.concurrency],
            )
        )
    print_table("Server CPU per unary call (the floor is a bare grpc.aio server)", header, table)

    crud = [r for r in rows if r.backend == "sqlite" and r.operation != "Health.Check"]
    for log_level, group in itertools.groupby(
        sorted(crud, key=lambda r: r.log_level), key=lambda r: r.log_level
    ):
        ratios = [
            r.phase.cpu_ms_per_operation() / floor[r.concurrency].cpu_ms_per_operation()
            for r in group
        ]
        worst = max(ratios)
        verdict = "met" if worst <= 2.0 else "missed"
        print(
            f"target (SQLite, log {log_level}): CRUD CPU/call <= 2x floor: {verdict} "
            f"(worst {worst:.2f}x, median {median(ratios):.2f}x)"
        )
    for row in rows:
        print_failures(f"{row.backend} {row.operation} x{row.concurrency}", row.phase.error_kinds)


def _row(
    backend: str, log_level: str, operation: str, concurrency: int, phase: Phase, floor: Phase
) -> list[object]:
    cpu = phase.cpu_ms_per_operation()
    return [
        backend,
        log_level,
        operation,
        concurrency,
        phase.rate,
        ms(percentile(phase.latencies, 0.5)),
        ms(percentile(phase.latencies, 0.99)),
        round(cpu, 3),
        round(cpu / floor.cpu_ms_per_operation(), 2) if not math.isnan(cpu) else math.nan,
        round(phase.cpu_ms_per_operation("client"), 3),
    ]


async def main(args: argparse.Namespace) -> None:
    backends = args.backends.split(",")
    log_levels = args.log_levels.split(",")
    if "postgres" in backends and not await postgres_reachable():
        print("PostgreSQL is unreachable: measuring SQLite only")
        backends = [b for b in backends if b != "postgres"]
    rows: list[Row] = []
    with scratch_dir("assistants-bench-crud-") as work:
        floor = await measure_floor(args.calls, work)
        for backend in backends:
            for log_level in log_levels:
                if backend == "sqlite":
                    url = f"sqlite:///{work / f'crud-{log_level.lower()}.db'}"
                    rows += await measure_server(backend, url, log_level, args.calls, work)
                else:
                    async with fresh_database("assistants_bench_crud") as url:
                        rows += await measure_server(backend, url, log_level, args.calls, work)
    report(floor, rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000, help="calls per measured phase")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--log-levels", default="INFO,WARNING")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
