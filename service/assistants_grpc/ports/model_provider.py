"""The port through which the run engine talks to a chat-completions model.

The engine speaks OpenAI's chat-completions vocabulary (messages, tools, tool_choice) because
every provider we support understands it; adapters translate only transport details (SDK client,
endpoint, credentials, retries).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat-completions call, already resolved to a deployment's upstream model name."""

    model: str
    """The model name as the upstream knows it (after routing)."""
    messages: list[dict[str, Any]]
    """Chat messages in OpenAI's chat-completions format (system, user, assistant, tool)."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Function tools in chat-completions format: {"type": "function", "function": {...}}."""
    tool_choice: str | dict[str, Any] | None = None
    """"none", "auto", "required", a named function choice, or None to leave it to the model."""
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    timeout_seconds: float | None = None
    """The caller's remaining deadline; adapters cap their own timeout with it."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a function tool call; `index` says which call it belongs to.

    The first delta of a call carries `call_id` and `name`; later ones usually only append to
    `arguments`.
    """

    index: int
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"


@dataclass(frozen=True, slots=True)
class Finish:
    """The model finished this completion."""

    reason: FinishReason


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts for the completion, as reported by the upstream (or estimated)."""

    prompt_tokens: int
    completion_tokens: int


ChatEvent = TextDelta | ToolCallDelta | Finish | TokenUsage


class ProviderErrorKind(StrEnum):
    """How a provider failure maps onto a run's `last_error.code`."""

    RATE_LIMIT = "rate_limit_exceeded"
    SERVER_ERROR = "server_error"
    INVALID_PROMPT = "invalid_prompt"


class ProviderError(Exception):
    """A model call failed for good (after the adapter's own bounded retries)."""

    def __init__(self, kind: ProviderErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ModelProvider(Protocol):
    """A deployment that can stream a chat completion."""

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        """Stream one completion.

        Yields deltas in order, then exactly one `Finish`, optionally followed or preceded by one
        `TokenUsage`. Raises `ProviderError` when the call fails after retries; retries happen
        only before the first event was yielded, so a caller never sees a delta twice.
        Cancelling the consuming task must abort the upstream request promptly.
        """
        ...


class ModelRouter(Protocol):
    """Maps the `model` named on an assistant or a run to the deployment that serves it."""

    def resolve(self, model: str) -> tuple[ModelProvider, str] | None:
        """The provider and upstream model name for `model`, or None when nobody serves it."""
        ...
