"""The image's health check, run as the Dockerfile declares it, against the real process: healthy
while it serves, unhealthy once it has stopped. (No container engine runs here; the probe is the
part of the image that can be wrong in ways hadolint cannot see.)"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from .conftest import Launch
from .grpcurl import run_process

pytestmark = pytest.mark.e2e

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def health_check_command() -> list[str]:
    """The exec-form CMD of the HEALTHCHECK instruction, with the image's python replaced by
    ours (the same packages are installed in both)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile declares no exec-form HEALTHCHECK"
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def test_health_check_follows_the_servers_health(launch: Launch, database_url: str) -> None:
    server = await launch("--database-url", database_url)
    environment = {**os.environ, "ASSISTANTS_PORT": str(server.port)}
    probe = await run_process(*health_check_command(), env=environment)
    assert probe.returncode == 0, probe.stderr

    assert await server.terminate() == 0
    probe = await run_process(*health_check_command(), env=environment)
    assert probe.returncode != 0
