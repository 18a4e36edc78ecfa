"""The Quick Start examples of every client language against the real `assistants-grpc serve`.

Each example lists assistants (creating one when there is none), creates a thread, adds a
message, streams a run's reply, answers a function call with SubmitToolOutputsStream and prints
the final answer; each is run once against an open server and once against a server that
demands an API key. The TypeScript and Go examples are built once per session, in parallel.
Without their toolchains (`make clients`) they are skipped, except in CI, where that fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..support.servers import ServerProcess, server_command

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TYPESCRIPT = REPO / "clients" / "typescript"
DEBIAN_GO_SOURCES = Path("/usr/share/gocode/src/google.golang.org/grpc")
LANGUAGES = ["python", "typescript", "go"]
BUILD_TIMEOUT = 300
RUN_TIMEOUT = 60
IN_CI = os.environ.get("CI") == "true"


@dataclass
class Example:
    """How to run one language's example, or why it cannot run."""

    command: list[str] | None = None
    missing_toolchain: str | None = None
    build: subprocess.Popen[str] | None = None
    """The build, while it runs; the tests of other languages go on meanwhile."""
    build_failure: str | None = None

    def wait_for_build(self) -> None:
        if self.build is None:
            return
        output, _ = self.build.communicate(timeout=BUILD_TIMEOUT)
        if self.build.returncode != 0:
            self.build_failure = f"the build failed:\n{output}"
        self.build = None


def _start_build(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Example]]:
    """The examples, their TypeScript and Go builds started side by side."""
    found = {
        "python": Example(command=[sys.executable, str(REPO / "examples/python/quickstart.py")])
    }
    if shutil.which("node") and shutil.which("npm") and (TYPESCRIPT / "node_modules").is_dir():
        found["typescript"] = Example(
            command=["node", "dist/examples/quickstart.js"],
            build=_start_build(["npm", "run", "--silent", "build"], TYPESCRIPT),
        )
    else:
        found["typescript"] = Example(
            missing_toolchain="node, npm or clients/typescript/node_modules is missing "
            "(run `make clients`)"
        )
    if shutil.which("go") and DEBIAN_GO_SOURCES.is_dir():
        binary = tmp_path_factory.mktemp("go") / "quickstart"
        build_command = [
            str(REPO / "scripts/go-gopath-build.sh"),
            "build",
            "-o",
            str(binary),
            "./examples/quickstart",
        ]
        found["go"] = Example(command=[str(binary)], build=_start_build(build_command, REPO))
    else:
        found["go"] = Example(
            missing_toolchain="go or Debian's grpc-go sources are missing (run `make clients`)"
        )
    try:
        yield found
    finally:
        for example in found.values():
            if example.build is not None and example.build.poll() is None:
                example.build.kill()
                example.build.wait()


def _runnable(examples: dict[str, Example], language: str) -> list[str]:
    example = examples[language]
    if example.missing_toolchain is not None:
        if IN_CI:
            pytest.fail(f"{language}: {example.missing_toolchain}")
        pytest.skip(f"{language}: {example.missing_toolchain}")
    example.wait_for_build()
    assert example.build_failure is None, f"{language}: {example.build_failure}"
    assert example.command is not None
    return example.command


def _run(
    command: list[str], target: str, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ASSISTANTS_API_KEY", "ASSISTANTS_MODEL")
    }
    env["ASSISTANTS_GRPC_TARGET"] = target
    if api_key is not None:
        env["ASSISTANTS_API_KEY"] = api_key
    cwd = TYPESCRIPT if command[0] == "node" else REPO
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def _serve_args(database: Path, *extra: str) -> list[str]:
    # No model list: `scripted-demo` is served by the built-in scripted provider, which calls
    # the function a run offers and then answers with the function's output.
    return [
        "--database-url",
        f"sqlite:///{database}",
        "--no-log-json",
        "--log-level",
        "WARNING",
        *extra,
    ]


@pytest.fixture(scope="module")
async def open_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("open-server")
    server = ServerProcess(_serve_args(folder / "assistants.db"))
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class KeyedServer:
    server: ServerProcess
    api_key: str


@pytest.fixture(scope="module")
async def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KeyedServer]:
    """A server on a database that holds one API key, so that every call needs a key."""
    folder = tmp_path_factory.mktemp("keyed-server")
    database = folder / "assistants.db"
    created = await asyncio.to_thread(
        subprocess.run,
        [
            *server_command(),
            "keys",
            "create",
            "--project",
            "quickstart",
            "--database-url",
            f"sqlite:///{database}",
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    if created.returncode != 0 and "invalid choice" in created.stderr:
        pytest.skip("this build of assistants-grpc has no `keys` command")
    assert created.returncode == 0, created.stderr
    server = ServerProcess(_serve_args(database))
    await server.start()
    try:
        yield KeyedServer(server, created.stdout.strip())
    finally:
        server.stop()


def _assert_quick_start_output(result: subprocess.CompletedProcess[str]) -> None:
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    stdout = result.stdout
    assert re.search(r"^assistant asst_\w+ \(\d+ listed\)$", stdout, re.M), report
    # The reply to the first message, streamed and printed as it arrived.
    assert "You said: Hello! What can you do?" in stdout, report
    assert re.search(r"^tool call call_\w+: get_weather\(.*\) -> ", stdout, re.M), report
    final = re.search(r"^final answer: (.+)$", stdout, re.M)
    assert final is not None, report
    assert "sunny" in final.group(1), report


@pytest.mark.parametrize("language", LANGUAGES)
def test_quick_start_example(
    language: str, examples: dict[str, Example], open_server: ServerProcess
) -> None:
    command = _runnable(examples, language)
    _assert_quick_start_output(_run(command, open_server.target))


@pytest.mark.parametrize("language", LANGUAGES)
def test_quick_start_example_with_an_api_key(
    language: str, examples: dict[str, Example], keyed_server: KeyedServer
) -> None:
    command = _runnable(examples, language)
    _assert_quick_start_output(_run(command, keyed_server.server.target, keyed_server.api_key))

    refused = _run(command, keyed_server.server.target)
    assert refused.returncode != 0, refused.stdout
    assert "unauthenticated" in refused.stderr.lower(), refused.stderr
