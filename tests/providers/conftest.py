"""A fresh fake upstream on 127.0.0.1 for every provider test that asks for one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistants_grpc.testing.fake_upstream import FakeUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply_tokens=5) as fake:
        yield fake
