"""Small helpers for tests that talk to a `ModelProvider` directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from assistants_grpc.ports.model_provider import ChatEvent, ChatRequest, ModelProvider, TextDelta


def user_chat(text: str = "Hello", *, model: str = "gpt-test", **fields: Any) -> ChatRequest:
    """A request whose only message is a user message with `text`."""
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **fields)


async def collect_events(provider: ModelProvider, request: ChatRequest) -> list[ChatEvent]:
    """Every event of one completion; a ProviderError propagates."""
    return [event async for event in provider.stream_chat(request)]


async def drain_into(events: AsyncIterator[ChatEvent], seen: list[ChatEvent]) -> None:
    """Append every event to `seen`, so a test can check what came before a failure."""
    async for event in events:
        seen.append(event)


def joined_text(events: list[ChatEvent]) -> str:
    """The text deltas of `events`, joined."""
    return "".join(event.text for event in events if isinstance(event, TextDelta))
