"""Fixtures of the fault tests: the fake model upstream in this process, with the environment
variable its routes name for their key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistants_grpc.testing.fake_upstream import FakeUpstream

from .helpers import UPSTREAM_KEY, UPSTREAM_KEY_ENV


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeUpstream]:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    async with FakeUpstream(reply_tokens=5) as fake:
        yield fake
