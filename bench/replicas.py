"""Scale-out benchmark: the conversation workload of bench/conversation.py against 1, 2 and 3
replicas sharing one PostgreSQL database. The client spreads its calls round-robin over the
replicas, call by call, as a gRPC-aware balancer would, so a run is often streamed by a replica
other than the one executing it.

For each replica count it prints conversations/s and, per conversation: server CPU (summed
over the replicas), PostgreSQL CPU (every postgres process), the fake upstream's and the
client's CPU, database transactions (pg_stat_database xact_commit + xact_rollback of the
benchmark's database: every BEGIN..COMMIT and every statement outside one) and database
round trips. Round trips are counted in a second, shorter pass in which the replicas reach
PostgreSQL through bench/pg_proxy.py, which counts each time a client speaks after the server
did (a pipelined batch counts once); the relay costs CPU, so that pass measures nothing else.

    python bench/replicas.py [--conversations 600] [--concurrency 32] [--replicas 1,2,3]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import uvloop
from conversation import ConversationClient, StreamTimes
from harness import (
    ChildProcess,
    CpuMeter,
    Phase,
    closed_loop,
    fresh_database,
    ms,
    percentile,
    postgres_reachable,
    print_failures,
    print_table,
    scratch_dir,
    start_fake_upstream,
    start_server,
    transactions_of,
)
from pg_proxy import read_counts

ROUND_TRIP_CONVERSATIONS = 300


@dataclass
class ReplicaResult:
    replicas: int
    phase: Phase
    times: StreamTimes
    transactions: float
    round_trips: float = math.nan


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


async def start_replicas(
    count: int, database_url: str, upstream_url: str, work: Path, tag: str
) -> list[tuple[ChildProcess, str]]:
    started = []
    for index in range(count):
        # The first one creates the schema; the others find it there.
        started.append(
            await start_server(
                f"replica-{tag}-{count}-{index}",
                database_url,
                work,
                upstream_base_url=upstream_url,
                extra=["--replica-id", f"bench-{index}"],
            )
        )
    return started


async def throughput(
    count: int, upstream: ChildProcess, upstream_url: str, args: argparse.Namespace, work: Path
) -> ReplicaResult:
    async with fresh_database("assistants_bench_replicas") as url:
        replicas = await start_replicas(count, url, upstream_url, work, "main")
        try:
            client = ConversationClient([target for _, target in replicas], 2)
            await client.prepare()
            await closed_loop("warm-up", client.conversation, 60, args.concurrency, CpuMeter([]))
            client.times = StreamTimes()
            meter = CpuMeter(
                [server.pid for server, _ in replicas],
                others={"upstream": [upstream.pid]},
                include_postgres=True,
            )
            before = await transactions_of(url)
            phase = await closed_loop(
                f"{count} replicas",
                client.conversation,
                args.conversations,
                args.concurrency,
                meter,
            )
            transactions = (await transactions_of(url) - before) / max(1, phase.operations)
            await client.close()
        finally:
            for server, _ in replicas:
                server.stop()
    return ReplicaResult(count, phase, client.times, transactions)


async def round_trips(count: int, upstream_url: str, args: argparse.Namespace, work: Path) -> float:
    proxy = ChildProcess(
        f"pg-proxy-{count}",
        [sys.executable, str(Path(__file__).with_name("pg_proxy.py"))],
        r"listening on 127\.0\.0\.1:(\d+) control 127\.0\.0\.1:(\d+)",
        work,
    )
    match = await proxy.start()
    relay_port, control_port = int(match.group(1)), int(match.group(2))
    try:
        async with fresh_database("assistants_bench_replicas_rt") as url:
            replicas = await start_replicas(
                count, through(url, relay_port), upstream_url, work, "round-trips"
            )
            try:
                client = ConversationClient([target for _, target in replicas], 2)
                await client.prepare()
                await closed_loop(
                    "warm-up", client.conversation, 60, args.concurrency, CpuMeter([])
                )
                before = await read_counts(control_port)
                phase = await closed_loop(
                    "round trips",
                    client.conversation,
                    ROUND_TRIP_CONVERSATIONS,
                    args.concurrency,
                    CpuMeter([]),
                )
                after = await read_counts(control_port)
                await client.close()
            finally:
                for server, _ in replicas:
                    server.stop()
    finally:
        proxy.stop()
    return (after.round_trips - before.round_trips) / max(1, phase.operations)


def report(results: list[ReplicaResult], concurrency: int) -> None:
    header = [
        "replicas",
        "conv/s",
        "x 1 replica",
        "stream p50 ms",
        "stream p99 ms",
        "server CPU ms/conv",
        "postgres CPU ms/conv",
        "upstream CPU ms/conv",
        "client CPU ms/conv",
        "DB transactions/conv",
        "DB round trips/conv",
        "failed",
    ]
    base = results[0].phase.rate if results else math.nan
    rows: list[list[object]] = []
    for r in results:
        rows.append(
            [
                r.replicas,
                r.phase.rate,
                round(r.phase.rate / base, 2),
                ms(percentile(r.times.duration, 0.5)),
                ms(percentile(r.times.duration, 0.99)),
                round(r.phase.cpu_ms_per_operation(), 2),
                round(r.phase.cpu_ms_per_operation("postgres"), 2),
                round(r.phase.cpu_ms_per_operation("upstream"), 2),
                round(r.phase.cpu_ms_per_operation("client"), 2),
                round(r.transactions, 1),
                round(r.round_trips, 1),
                r.phase.errors + r.times.not_completed,
            ]
        )
    print_table(
        f"Replicas on one PostgreSQL (conversations at concurrency {concurrency}, "
        "calls round-robin over the replicas)",
        header,
        rows,
    )
    for r in results:
        print_failures(f"{r.replicas} replicas", r.phase.error_kinds + r.times.endings)


async def main(args: argparse.Namespace) -> None:
    if not await postgres_reachable():
        print("PostgreSQL is unreachable: the replica benchmark needs it")
        return
    counts = [int(n) for n in args.replicas.split(",")]
    results: list[ReplicaResult] = []
    with scratch_dir("assistants-bench-replicas-") as work:
        upstream, upstream_url = await start_fake_upstream(work, reply_tokens=50)
        try:
            for count in counts:
                result = await throughput(count, upstream, upstream_url, args, work)
                if not args.skip_round_trips:
                    result.round_trips = await round_trips(count, upstream_url, args, work)
                results.append(result)
        finally:
            upstream.stop()
    report(results, args.concurrency)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--skip-round-trips", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
