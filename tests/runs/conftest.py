"""Fixtures of the run tests: a fake OpenAI-compatible upstream, and servers that route model
names to it through the real openai-SDK provider (and to scripted models where a script is
simpler)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from assistants_grpc.testing.fake_upstream import FakeUpstream

from .support import RunServer, serve

ServerFactory = Callable[..., AbstractAsyncContextManager[RunServer]]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply_tokens=6) as fake:
        yield fake


@pytest.fixture
def start_server(
    sqlite_url: str, tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> ServerFactory:
    """Starts a server on the test's SQLite file: `start_server(scripts={...}, **settings)`.
    Called again after the first one closed, it is the same service restarted."""

    def factory(
        *, scripts: dict[str, str] | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[RunServer]:
        return serve(
            sqlite_url, tmp_path, upstream, monkeypatch, scripts=scripts or {}, **overrides
        )

    return factory


@pytest.fixture
async def server(start_server: ServerFactory) -> AsyncIterator[RunServer]:
    async with start_server() as running:
        yield running
