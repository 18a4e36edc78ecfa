"""Safe by default: beyond loopback the server demands keys, and refuses to start while none
exists unless the operator allows anonymous callers. TLS settings that would silently serve
plaintext are refused too."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.application.api_keys import ApiKeys
from assistants_grpc.composition import (
    StartupError,
    UnsafeBind,
    build_api_keys,
    read_tls,
    refuse_unsafe_bind,
)
from assistants_grpc.config import Settings

from ..support.servers import server_command


def _settings(sqlite_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=sqlite_url, port=0, **overrides)


async def test_beyond_loopback_without_keys_is_refused(
    storage: SqliteStorage, sqlite_url: str
) -> None:
    settings = _settings(sqlite_url, host="0.0.0.0")
    with pytest.raises(UnsafeBind, match="--allow-unauthenticated"):
        await refuse_unsafe_bind(settings, build_api_keys(settings, storage))


async def test_only_revoked_keys_count_as_no_keys(storage: SqliteStorage, sqlite_url: str) -> None:
    keys = ApiKeys(storage, always_required=False)
    await keys.revoke((await keys.create("acme")).record.id)
    settings = _settings(sqlite_url, host="::")
    with pytest.raises(UnsafeBind):
        await refuse_unsafe_bind(settings, build_api_keys(settings, storage))


@pytest.mark.parametrize(
    "overrides",
    [
        {"host": "127.0.0.1"},
        {"host": "localhost"},
        {"host": "::1"},
        {"host": "0.0.0.0", "allow_unauthenticated": True},
        {"host": "0.0.0.0", "require_api_keys": True},
    ],
)
async def test_loopback_or_an_explicit_choice_may_start_without_keys(
    storage: SqliteStorage, sqlite_url: str, overrides: dict[str, Any]
) -> None:
    settings = _settings(sqlite_url, **overrides)
    await refuse_unsafe_bind(settings, build_api_keys(settings, storage))


async def test_beyond_loopback_an_active_key_allows_the_start_and_keys_stay_required(
    storage: SqliteStorage, sqlite_url: str
) -> None:
    settings = _settings(sqlite_url, host="0.0.0.0")
    keys = build_api_keys(settings, storage)
    created = await keys.create("acme")
    await refuse_unsafe_bind(settings, keys)

    await keys.revoke(created.record.id)
    # Revoking the last key must not turn a public port into an open one.
    assert await build_api_keys(settings, storage).keys_required()
    anonymous_allowed = _settings(sqlite_url, host="0.0.0.0", allow_unauthenticated=True)
    assert not await ApiKeys(storage, always_required=False).has_active_key()
    assert await build_api_keys(anonymous_allowed, storage).keys_required()


async def test_serve_explains_the_refusal_and_exits(tmp_path: Path) -> None:
    process = await asyncio.to_thread(
        subprocess.run,
        [
            *server_command(),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--database-url",
            f"sqlite:///{tmp_path / 'refused.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 2
    assert "refusing to serve on 0.0.0.0" in process.stderr
    assert "keys create --project" in process.stderr
    assert "listening" not in process.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_key_file": "server.key"}, "need tls_cert_file"),
        ({"tls_client_ca_file": "ca.crt"}, "need tls_cert_file"),
        ({"tls_cert_file": "server.crt"}, "tls_key_file is required"),
        ({"tls_cert_file": "missing.crt", "tls_key_file": "missing.key"}, "cannot read"),
    ],
)
def test_incomplete_tls_settings_are_refused(
    sqlite_url: str, tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    paths = {name: tmp_path / value for name, value in overrides.items()}
    with pytest.raises(StartupError, match=message):
        read_tls(_settings(sqlite_url, **paths))
