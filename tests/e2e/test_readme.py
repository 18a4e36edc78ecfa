"""The README tells the truth: its grpcurl walkthrough runs, command by command, against the real
server on a fresh SQLite file (with the output it shows), it covers every RPC, and its
configuration reference names every setting with its flag, environment variable and default."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistants.v1 import (
    assistant_service_pb2,
    message_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants_grpc.config import ENV_PREFIX, Settings

from .conftest import Launch
from .grpcurl import run_process

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
README_ADDRESS = "localhost:50051"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# Lines of a sample output that vary from one run to the next, and are not compared.
VARYING = re.compile(
    r"\b(asst|thread|msg|run|step|call|key)_[A-Za-z0-9]+"
    r'|"\w+_at": "\d+"'
    r'|"sequence_number"'
    r"|\.\.\."
)
BRACKETS_ONLY = re.compile(r"[\s\[\]{},]*")


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


@dataclass
class Step:
    """One shell block of the walkthrough, and the output shown after it, if any."""

    commands: str
    sample: str = ""

    @property
    def expected_code(self) -> str | None:
        """The status code the sample shows for a command that must fail."""
        match = re.search(r"^\s*Code: (\w+)", self.sample, re.MULTILINE)
        return match.group(1) if self.sample.startswith("ERROR:") and match else None


def walkthrough_steps() -> list[Step]:
    steps: list[Step] = []
    for language, body in FENCE.findall(section("grpcurl walkthrough")):
        if language == "sh":
            steps.append(Step(body))
        elif language == "text" and steps and not steps[-1].sample:
            steps[-1].sample = body
    return steps


def normalized(line: str) -> str:
    return " ".join(line.split())


def script_for(steps: list[Step], target: str) -> str:
    """One bash script running every step in order, marking where each step begins and ends
    and every command that fails (the ERR trap), so that each step can be judged alone."""
    lines = ["set -E -o pipefail", "trap 'echo \"@@failed $?\"' ERR"]
    for number, step in enumerate(steps):
        lines += [
            f"echo '@@begin {number}'",
            step.commands.replace(README_ADDRESS, target).rstrip("\n"),
            f"echo '@@end {number}'",
        ]
    return "\n".join(lines) + "\n"


def outputs_by_step(output: str, count: int) -> list[str]:
    outputs: list[str] = []
    for number in range(count):
        begin, end = f"@@begin {number}\n", f"@@end {number}\n"
        assert begin in output, f"the walkthrough stopped before step {number}:\n{output[-3000:]}"
        assert end in output, f"step {number} did not finish:\n{output[-3000:]}"
        outputs.append(output.split(begin, 1)[1].split(end, 1)[0])
    return outputs


def test_walkthrough_blocks_are_found() -> None:
    steps = walkthrough_steps()
    assert len(steps) > 20
    assert sum(1 for s in steps if s.expected_code) >= 4


async def test_walkthrough_runs_against_a_live_server(
    launch: Launch, database_url: str, tmp_path: Path
) -> None:
    server = await launch("--database-url", database_url)
    steps = walkthrough_steps()
    venv_bin = str(Path(sys.executable).parent)
    environment = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        # `assistants-grpc keys create` must reach the database of the server under test.
        "ASSISTANTS_DATABASE_URL": database_url,
    }
    environment.pop("ASSISTANTS_API_KEY", None)
    result = await run_process(
        "bash",
        "-c",
        script_for(steps, server.target),
        env=environment,
        cwd=tmp_path,
        merge_stderr=True,
        timeout=60,
    )
    for number, (step, output) in enumerate(
        zip(steps, outputs_by_step(result.stdout, len(steps)), strict=True)
    ):
        where = f"walkthrough step {number}:\n{step.commands}\n--- output ---\n{output}"
        if step.expected_code is None:
            assert "@@failed" not in output, where
        else:
            assert "@@failed" in output, where
            assert f"Code: {step.expected_code}" in output, where
        shown = {normalized(line) for line in output.splitlines()}
        for line in step.sample.splitlines():
            # Brackets alone say nothing, and samples may cut a response short after them.
            if not BRACKETS_ONLY.fullmatch(line) and not VARYING.search(line):
                assert normalized(line) in shown, f"{where}\n--- missing ---\n{line}"


def test_walkthrough_covers_every_rpc() -> None:
    text = section("grpcurl walkthrough")
    missing = []
    for module, service in (
        (assistant_service_pb2, "AssistantService"),
        (thread_service_pb2, "ThreadService"),
        (message_service_pb2, "MessageService"),
        (run_service_pb2, "RunService"),
    ):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            name = f"{descriptor.full_name}/{method.name}"
            if f" {name}" not in text:
                missing.append(name)
    assert not missing
    assert '-H "authorization: Bearer $ASSISTANTS_API_KEY"' in text


def reference_rows() -> dict[str, list[str]]:
    """The configuration table by flag: its cells, without backticks."""
    rows: dict[str, list[str]] = {}
    for line in section("Configuration").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"--[a-z][a-z-]*", cells[0]):
            rows[cells[0]] = cells
    return rows


def test_configuration_reference_lists_every_setting() -> None:
    rows = reference_rows()
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in rows, f"the README's configuration reference lacks {flag}"
        _, env, default, meaning = rows[flag]
        assert env == ENV_PREFIX + name.upper(), flag
        assert meaning, flag
        if field.default_factory is not None:
            continue
        value = field.default
        if value is None:
            assert default == "none", flag
        elif isinstance(value, bool):
            assert default == str(value).lower(), flag
        elif isinstance(value, int | float):
            assert float(default) == value, flag
        else:
            assert default == str(value), flag
    documented = {flag.removeprefix("--").replace("-", "_") for flag in rows}
    assert documented <= set(Settings.model_fields), "the README documents unknown settings"
