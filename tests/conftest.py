"""Fixtures shared by every test folder: an in-process server on SQLite with the default
(scripted) models, and its stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistants_grpc.composition import Application

from .support.servers import in_process_server, server_settings
from .support.stubs import Stubs


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'assistants.db'}"


@pytest.fixture
async def app_and_stubs(sqlite_url: str) -> AsyncIterator[tuple[Application, Stubs]]:
    async with in_process_server(server_settings(sqlite_url)) as pair:
        yield pair


@pytest.fixture
def stubs(app_and_stubs: tuple[Application, Stubs]) -> Stubs:
    return app_and_stubs[1]
