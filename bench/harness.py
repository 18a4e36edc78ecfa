"""What the benchmarks share: child processes (the real server, the fake upstream, the bare
gRPC floor server), CPU and memory read from /proc, PostgreSQL databases made for one run,
a closed-loop load driver, and printing.

Every server measured is a separate process from the client, so the client's own CPU is never
counted as the server's. CPU is read from /proc/<pid>/stat (utime + stime, every thread of the
process) before and after a phase; dividing by the calls of the phase gives CPU per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

BENCH_DIR = Path(__file__).resolve().parent
POSTGRES_ADMIN_URL = os.environ.get(
    "ASSISTANTS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FAKE_KEY_ENV = "ASSISTANTS_BENCH_FAKE_KEY"
MODEL = "bench-model"
# Separate HTTP/2 connections per channel (channels to one target otherwise share one).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


# --- /proc --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of every thread of the process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after it are fixed.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's resident set high-water mark (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def postgres_pids() -> list[int]:
    """Every process of the local PostgreSQL server (backends, writers, checkpointer)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip().startswith("postgres"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def total_cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


class CpuMeter:
    """CPU spent between `start` and `stop` by named groups of processes ("server" is the one
    measured; others, such as the fake upstream, show where the rest of the machine went), by
    this client process, and optionally by every PostgreSQL process (looked up at both ends,
    since backends come and go)."""

    def __init__(
        self,
        server: Sequence[int],
        *,
        others: dict[str, Sequence[int]] | None = None,
        include_postgres: bool = False,
    ) -> None:
        self._groups = {"server": list(server), **{k: list(v) for k, v in (others or {}).items()}}
        self._include_postgres = include_postgres
        self._started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        reading = {name: total_cpu(pids) for name, pids in self._groups.items()}
        reading["client"] = time.process_time()
        if self._include_postgres:
            reading["postgres"] = total_cpu(postgres_pids())
        return reading

    def start(self) -> None:
        self._started = self._read()

    def stop(self) -> None:
        ended = self._read()
        self.seconds = {key: ended[key] - self._started[key] for key in ended}


# --- child processes ----------------------------------------------------------------------------


class ChildProcess:
    """A child process writing its output to a log file, ready once a line matches `ready`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready = re.compile(ready)
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.match: re.Match[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _launch(self) -> subprocess.Popen[bytes]:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        return self.process

    async def start(self, timeout: float = 30.0) -> re.Match[str]:
        process = self._launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            match = self.ready.search(text)
            if match:
                self.match = match
                return match
            if process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


def server_executable() -> list[str]:
    script = Path(sys.executable).with_name("assistants-grpc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "assistants_grpc.cli"]


def model_routes(upstream_base_url: str) -> str:
    return json.dumps(
        [
            {
                "name": f"{MODEL}*",
                "provider": "openai_compatible",
                "base_url": upstream_base_url,
                "api_key_env": FAKE_KEY_ENV,
            }
        ]
    )


async def start_server(
    name: str,
    database_url: str,
    log_dir: Path,
    *,
    log_level: str = "INFO",
    upstream_base_url: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[ChildProcess, str]:
    """`assistants-grpc serve` on a free port with its default settings except those given;
    returns the process and its target."""
    argv = [
        *server_executable(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--log-level",
        log_level,
        *extra,
    ]
    if upstream_base_url is not None:
        argv += ["--models", model_routes(upstream_base_url)]
    server = ChildProcess(
        name, argv, r"listening on (\S+):(\d+)", log_dir, env={FAKE_KEY_ENV: "bench"}
    )
    match = await server.start()
    return server, f"127.0.0.1:{match.group(2)}"


async def start_fake_upstream(
    log_dir: Path, *, reply_tokens: int = 50, token_delay_ms: float = 0.0
) -> tuple[ChildProcess, str]:
    """The fake OpenAI-compatible upstream as its own process; returns it and its base URL."""
    upstream = ChildProcess(
        "fake-upstream",
        [
            sys.executable,
            "-m",
            "assistants_grpc.testing.fake_upstream",
            "--port",
            "0",
            "--reply-tokens",
            str(reply_tokens),
            "--token-delay-ms",
            str(token_delay_ms),
            "--record-limit",
            "0",
        ],
        r"(http://127\.0\.0\.1:\d+/v1)",
        log_dir,
    )
    match = await upstream.start()
    return upstream, match.group(1)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- PostgreSQL ---------------------------------------------------------------------------------


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def fresh_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database for one measurement, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


async def transactions_of(database_url: str) -> int:
    """Transactions committed or rolled back in the database so far (pg_stat_database)."""
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        # The statistics snapshot is per transaction; a fresh one sees the latest counts.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return int(value)


# --- load -------------------------------------------------------------------------------------


def channels(target: str, count: int) -> list[grpc.aio.Channel]:
    return [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) for _ in range(count)]


@dataclass
class Phase:
    """The outcome of one closed-loop phase."""

    label: str
    operations: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else math.nan

    def cpu_ms_per_operation(self, key: str = "server") -> float:
        return 1000 * self.cpu.get(key, math.nan) / self.operations if self.operations else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


async def closed_loop(
    label: str,
    operation: Callable[[int], Awaitable[None]],
    count: int,
    concurrency: int,
    meter: CpuMeter,
    *,
    max_seconds: float = 60.0,
) -> Phase:
    """Runs `operation(i)` for i in range(count) with `concurrency` callers, each starting its
    next call when the previous one returns; stops early after `max_seconds`."""
    next_index = 0
    latencies: list[float] = []
    errors = 0
    error_kinds: Counter[str] = Counter()
    deadline = time.monotonic() + max_seconds

    async def caller() -> None:
        nonlocal next_index, errors
        while next_index < count and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                await operation(index)
            except grpc.aio.AioRpcError as error:
                errors += 1
                error_kinds[f"{error.code().name}: {(error.details() or '')[:100]}"] += 1
                continue
            latencies.append(time.perf_counter() - started)

    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    meter.stop()
    return Phase(
        label=label,
        operations=len(latencies),
        seconds=seconds,
        latencies=latencies,
        cpu=meter.seconds,
        errors=errors,
        error_kinds=error_kinds,
    )


# --- printing -----------------------------------------------------------------------------------


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(row[i]) for row in cells)) if cells else len(str(h))
        for i, h in enumerate(header)
    ]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(value.rjust(w) for value, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def print_failures(label: str, kinds: Counter[str]) -> None:
    for kind, count in kinds.most_common():
        print(f"  {label}: {count} x {kind}")


def ms(seconds: float) -> float:
    return seconds * 1000
