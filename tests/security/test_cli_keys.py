"""`assistants-grpc keys create|list|revoke` against the database a running server uses: the
key is printed once and never listed, and a revocation reaches the server within the cache
bound."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from assistants.v1 import assistant_service_pb2
from assistants_grpc import composition
from assistants_grpc.application.api_keys import KEY_PREFIX, ApiKeys
from assistants_grpc.composition import Application
from assistants_grpc.config import Settings
from assistants_grpc.ports.storage import Storage

from ..support.servers import in_process_server, server_command, server_settings
from .clients import connect

# The server under test re-reads keys this often, instead of every KEY_CACHE_SECONDS, so that
# the test sees a revocation arrive without waiting seconds for it.
TEST_CACHE_SECONDS = 0.3


def _keys_command(sqlite_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*server_command(), "keys", *args, "--database-url", sqlite_url, "--log-level", "ERROR"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def _keys(sqlite_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_keys_command, sqlite_url, *args)


@pytest.fixture
async def quick_app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Application]:
    def build_api_keys(settings: Settings, storage: Storage) -> ApiKeys:
        return ApiKeys(
            storage, always_required=settings.require_api_keys, cache_seconds=TEST_CACHE_SECONDS
        )

    monkeypatch.setattr(composition, "build_api_keys", build_api_keys)
    async with in_process_server(server_settings(sqlite_url)) as (app, _):
        yield app


async def test_keys_created_listed_and_revoked_from_the_command_line(
    quick_app: Application, sqlite_url: str
) -> None:
    created = await _keys(sqlite_url, "create", "--project", "acme", "--name", "ci bot")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith(KEY_PREFIX)
    assert "acme" in created.stderr
    assert "cannot be shown again" in created.stderr

    listing = await _keys(sqlite_url, "list")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.strip().splitlines()
    assert header.split() == ["ID", "PROJECT", "NAME", "CREATED", "REVOKED"]
    key_id = row.split()[0]
    assert key_id.startswith("key_")
    assert row.split()[1:4] == ["acme", "ci", "bot"]
    assert row.split()[-1] == "-"
    assert secret not in listing.stdout + listing.stderr
    assert secret[len(KEY_PREFIX) :] not in listing.stdout

    target = f"127.0.0.1:{quick_app.port}"
    stubs = connect(target, key=secret)
    try:
        await stubs.assistants.ListAssistants(assistant_service_pb2.ListAssistantsRequest())

        revoked = await _keys(sqlite_url, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert key_id in revoked.stdout
        revoked_at = time.monotonic()
        code = grpc.StatusCode.OK
        while time.monotonic() - revoked_at < TEST_CACHE_SECONDS + 2:
            try:
                await stubs.assistants.ListAssistants(assistant_service_pb2.ListAssistantsRequest())
            except grpc.aio.AioRpcError as error:
                code = error.code()
                break
            await asyncio.sleep(0.05)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert time.monotonic() - revoked_at <= TEST_CACHE_SECONDS + 0.5
    finally:
        await stubs.close()

    relisted = await _keys(sqlite_url, "list")
    assert relisted.stdout.strip().splitlines()[1].split()[-1] != "-"
    again = await _keys(sqlite_url, "revoke", key_id)
    assert again.returncode == 0
    assert "already revoked" in again.stdout


async def test_key_commands_report_bad_input(sqlite_url: str, tmp_path: Path) -> None:
    unknown = await _keys(sqlite_url, "revoke", "key_doesnotexist")
    assert unknown.returncode == 1
    assert "key_doesnotexist" in unknown.stderr
    bad_project = await _keys(sqlite_url, "create", "--project", "no spaces please")
    assert bad_project.returncode == 1
    assert "project" in bad_project.stderr
    assert bad_project.stdout == ""
    missing_project = await _keys(sqlite_url, "create")
    assert missing_project.returncode == 2
    assert "--project" in missing_project.stderr
