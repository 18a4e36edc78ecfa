"""The `assistants-grpc` command: `serve --help` documents every setting, `migrate` prepares a
database, and settings come from flags over environment variables over a YAML file."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from assistants_grpc.config import ENV_PREFIX, Settings

from ..support.servers import server_command
from .conftest import Launch
from .grpcurl import Grpcurl, run_process

pytestmark = pytest.mark.e2e

TABLES = {"assistants", "threads", "messages", "runs", "run_steps", "run_events", "api_keys"}


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*server_command(), *args], capture_output=True, text=True, timeout=30, check=False
    )


def tables_of(database_file: Path) -> set[str]:
    assert database_file.exists(), f"{database_file} was not created"
    with closing(sqlite3.connect(database_file)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def test_serve_help_lists_every_setting_with_its_variable() -> None:
    result = run_command("serve", "--help")
    assert result.returncode == 0, result.stderr
    # argparse wraps lines; judge the words, not the layout.
    text = " ".join(result.stdout.split())
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text, name
        assert f"Env: {ENV_PREFIX}{name.upper()}." in text, name
    assert "--config FILE" in text
    assert "ASSISTANTS_CONFIG" in text


def test_invalid_settings_stop_the_command_with_a_clear_message() -> None:
    result = run_command("serve", "--port", "70000", "--database-url", "mysql://nope")
    assert result.returncode != 0
    assert "port" in result.stderr
    assert "database_url" in result.stderr
    assert "Traceback" not in result.stderr


async def test_migrate_prepares_a_database_that_serve_then_uses(
    launch: Launch, database_file: Path, database_url: str
) -> None:
    result = await run_process(*server_command(), "migrate", "--database-url", database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tables_of(database_file) >= TABLES
    assert "migrations applied" in result.stdout

    # Serving starts by applying the migrations again, which finds nothing left to do.
    server = await launch("--database-url", database_url)
    grpcurl = Grpcurl(server.target)
    created = await grpcurl.call(
        "assistants.v1.AssistantService/CreateAssistant", {"model": "scripted-echo"}
    )
    assert created["assistant"]["id"].startswith("asst_")


async def test_settings_come_from_a_yaml_file_under_env_and_flags(
    launch: Launch, tmp_path: Path
) -> None:
    database_file = tmp_path / "from-file.db"
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{database_file}",
                "models": '[{"name": "file-model", "provider": "scripted"}]',
                "reflection": False,
            }
        )
    )
    # Each layer sets something: the file the database, the environment the models (over the
    # file's), and a flag reflection (over the file's), without which grpcurl could not call.
    server = await launch(
        "--config",
        str(config),
        "--reflection",
        env={"ASSISTANTS_MODELS": '[{"name": "env-model", "provider": "scripted"}]'},
    )
    grpcurl = Grpcurl(server.target)
    created = await grpcurl.call(
        "assistants.v1.AssistantService/CreateAssistant", {"model": "env-model"}
    )
    assert created["assistant"]["model"] == "env-model"
    error = await grpcurl.fail(
        "assistants.v1.AssistantService/CreateAssistant", {"model": "file-model"}
    )
    assert error.detail("BadRequest")["field_violations"][0]["field"] == "model"
    assert tables_of(database_file) >= TABLES

    # SIGINT drains and stops as SIGTERM does.
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(asyncio.to_thread(server.process.wait), 20) == 0
