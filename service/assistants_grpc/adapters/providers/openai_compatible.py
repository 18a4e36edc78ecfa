"""A model provider over the `openai` SDK: OpenAI, Azure OpenAI and OpenAI-compatible servers.

The SDK builds and sends the request (URL, Azure's deployment path and api-version, credentials,
status errors); this adapter reads the response's server-sent events itself and decodes each chunk
with msgspec into the few fields it needs. Letting the SDK build a pydantic object per chunk costs
about 25 times more CPU per token, which matters when hundreds of runs stream at once.

Timeouts. A deployment's `timeout_seconds` bounds every single wait on the upstream: connecting,
the first byte, and the silence between two chunks, so a long but lively answer is not cut. The
request's `timeout_seconds` (the caller's remaining deadline) caps those waits, and no attempt or
retry starts, and no stream goes on, after it.

Retries. Rate limits (429, honouring `retry-after-ms`/`retry-after`), 408, 5xx, timeouts, lost
connections and broken streams are retried with exponential backoff and jitter, but only until the
first event was yielded: after that a retry would replay deltas the caller already has. The SDK's
own retries are switched off so that these are the only ones.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import msgspec
import openai

from assistants_grpc.ports.model_provider import (
    ChatEvent,
    ChatRequest,
    Finish,
    FinishReason,
    ProviderError,
    ProviderErrorKind,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
)

_log = logging.getLogger(__name__)

HttpTransport = Literal["auto", "aiohttp", "httpx"]
"""How the SDK client talks HTTP: through aiohttp, through httpx2, or aiohttp when installed."""

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}
_INVALID_PROMPT_STATUSES = frozenset({400, 404, 413, 422})
_CREDENTIAL_STATUSES = frozenset({401, 403})
_MESSAGE_LIMIT = 200
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*]{6,}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a deployment retries a failed call."""

    max_retries: int = 2
    """Retries after the first attempt; 0 disables retrying."""
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 60.0
    """A rate limit asking to wait longer than this fails at once instead of blocking the run."""

    def backoff(self, retry_number: int) -> float:
        """The pause before retry number `retry_number` (1-based), with jitter.

        Half of the exponential step is fixed and half random, so that calls failing together do
        not come back together, and no pause is shorter than half the step.
        """
        step = min(
            self.max_backoff_seconds, self.initial_backoff_seconds * 2.0 ** (retry_number - 1)
        )
        return step / 2 + random.uniform(0, step / 2)


# -- the few chunk fields the adapter reads; msgspec skips everything else ------------------------


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallChunk(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCallChunk] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _StreamedError(msgspec.Struct):
    message: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: _StreamedError | str | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class _AttemptError(Exception):
    """One attempt failed; the retry loop decides whether to try again."""

    def __init__(
        self,
        kind: ProviderErrorKind,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class OpenAICompatibleProvider:
    """Streams chat completions from one deployment through one reused SDK client.

    Consume `stream_chat` with `async for` inside the task that may be cancelled (or wrap it in
    `contextlib.aclosing`): cancelling that task, or closing the generator, closes the HTTP
    response at once, and the upstream sees the client go away.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        label: str,
        timeout_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        max_tokens_param: str = "max_completion_tokens",
        include_usage: bool = True,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """Wrap an SDK client that was built with `max_retries=0`.

        `label` names the deployment in logs. `max_tokens_param` is the request field that carries
        `max_completion_tokens` (older OpenAI-compatible servers only know `max_tokens`).
        `include_usage` asks for a usage chunk; a server that rejects `stream_options` needs False.
        `secrets` are strings that must never appear in an error message (the API key).
        """
        self._client = client
        self._label = label
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._max_tokens_param = max_tokens_param
        self._include_usage = include_usage
        self._secrets = tuple(secret for secret in secrets if secret)

    @classmethod
    def for_openai(
        cls,
        *,
        label: str,
        api_key: str,
        base_url: str | None = None,
        timeout_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_tokens_param: str = "max_completion_tokens",
        include_usage: bool = True,
        http_transport: HttpTransport = "auto",
    ) -> OpenAICompatibleProvider:
        """A deployment on OpenAI itself, or on any server with an OpenAI-style `base_url`."""
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or "https://api.openai.com/v1",
            timeout=timeout_seconds,
            max_retries=0,
            default_headers=dict(headers) if headers else None,
            http_client=_http_client(http_transport, timeout_seconds),
        )
        return cls(
            client,
            label=label,
            timeout_seconds=timeout_seconds,
            retry=retry,
            max_tokens_param=max_tokens_param,
            include_usage=include_usage,
            secrets=(api_key,),
        )

    @classmethod
    def for_azure(
        cls,
        *,
        label: str,
        api_key: str,
        azure_endpoint: str,
        api_version: str,
        timeout_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_tokens_param: str = "max_completion_tokens",
        include_usage: bool = True,
        http_transport: HttpTransport = "auto",
    ) -> OpenAICompatibleProvider:
        """An Azure OpenAI resource; the upstream model name of each call is the deployment.

        The client is built without a fixed deployment so that one client serves every deployment
        routed to this resource: the SDK puts `/openai/deployments/{model}` into the path.
        """
        client = openai.AsyncAzureOpenAI(
            api_key=api_key,
            azure_endpoint=azure_endpoint,
            api_version=api_version,
            timeout=timeout_seconds,
            max_retries=0,
            default_headers=dict(headers) if headers else None,
            http_client=_http_client(http_transport, timeout_seconds),
        )
        return cls(
            client,
            label=label,
            timeout_seconds=timeout_seconds,
            retry=retry,
            max_tokens_param=max_tokens_param,
            include_usage=include_usage,
            secrets=(api_key,),
        )

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections of the SDK client."""
        await self._client.close()

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body for `request`, with unset fields left out."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
        }
        if self._include_usage:
            params["stream_options"] = {"include_usage": True}
        if request.tools:
            params["tools"] = request.tools
            if request.tool_choice is not None:
                params["tool_choice"] = request.tool_choice
            if request.parallel_tool_calls is not None:
                params["parallel_tool_calls"] = request.parallel_tool_calls
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            self._max_tokens_param: request.max_completion_tokens,
            "response_format": request.response_format,
            "reasoning_effort": request.reasoning_effort,
        }
        params.update((key, value) for key, value in optional.items() if value is not None)
        return params

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        params = self.request_params(request)
        loop = asyncio.get_running_loop()
        deadline = (
            None if request.timeout_seconds is None else loop.time() + request.timeout_seconds
        )
        attempt = 0
        while True:
            attempt += 1
            started = False
            finished = False
            usage: _Usage | None = None
            timeout = self._timeout
            try:
                timeout = self._attempt_timeout(loop, deadline)
                # The body travels as extra_body, which takes precedence over the named
                # arguments: otherwise the SDK walks every message and tool against its typed
                # schema on each call, which costs about a millisecond of CPU per call.
                async with self._client.chat.completions.with_streaming_response.create(
                    model=request.model,
                    messages=(),
                    stream=True,
                    extra_body=params,
                    timeout=timeout,
                ) as response:
                    # Read to the end of the body, past [DONE], so the connection can be reused.
                    async for data in _event_data(response.http_response):
                        if data == b"[DONE]":
                            continue
                        chunk = self._decode(data)
                        if chunk.usage is not None:
                            usage = chunk.usage
                        for event in _translate(chunk):
                            if isinstance(event, Finish):
                                if finished:
                                    continue
                                finished = True
                            started = True
                            yield event
                        if deadline is not None and loop.time() > deadline:
                            raise self._timed_out(None)
                if not finished:
                    raise _AttemptError(
                        ProviderErrorKind.SERVER_ERROR,
                        "The model provider's response ended before it was complete.",
                        retryable=True,
                    )
            except openai.APIStatusError as error:
                failure = self._status_failure(error)
            except (openai.APIConnectionError, httpx2.RequestError, ssl.SSLError, OSError) as error:
                if _is_timeout(error):
                    failure = self._timed_out(timeout)
                else:
                    failure = _AttemptError(
                        ProviderErrorKind.SERVER_ERROR,
                        "The connection to the model provider was lost."
                        if started
                        else "Could not reach the model provider.",
                        retryable=True,
                    )
            except openai.APIError:
                failure = _AttemptError(
                    ProviderErrorKind.SERVER_ERROR,
                    "The model provider failed to answer.",
                    retryable=True,
                )
            except _AttemptError as error:
                failure = error
            else:
                if usage is not None:
                    yield TokenUsage(usage.prompt_tokens, usage.completion_tokens)
                return

            if finished:
                # The completion is whole; only its tail (usage, [DONE]) was lost.
                _log.info("model %s: ignoring a failure after the finish: %s", self._label, failure)
                if usage is not None:
                    yield TokenUsage(usage.prompt_tokens, usage.completion_tokens)
                return
            delay = self._retry_delay(failure, attempt, started, loop, deadline)
            if delay is None:
                raise ProviderError(failure.kind, self._final_message(failure, attempt)) from None
            _log.warning(
                "model %s: attempt %d failed (%s); retrying in %.2fs",
                self._label,
                attempt,
                failure.message,
                delay,
            )
            await asyncio.sleep(delay)

    # -- helpers ---------------------------------------------------------------------------------

    def _attempt_timeout(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> float:
        if deadline is None:
            return self._timeout
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise self._timed_out(None)
        return min(self._timeout, remaining)

    def _decode(self, data: bytes) -> _Chunk:
        try:
            chunk = _decode_chunk(data)
        except msgspec.DecodeError:
            raise _AttemptError(
                ProviderErrorKind.SERVER_ERROR,
                "The model provider sent a malformed response chunk.",
                retryable=True,
            ) from None
        if chunk.error is not None:
            detail = chunk.error if isinstance(chunk.error, str) else chunk.error.message
            message = "The model provider reported an error mid-response"
            raise _AttemptError(
                ProviderErrorKind.SERVER_ERROR,
                f"{message}: {self._clean(detail)}" if detail else f"{message}.",
                retryable=True,
            )
        return chunk

    def _timed_out(self, seconds: float | None) -> _AttemptError:
        message = (
            f"The model provider did not answer within {seconds:g} s."
            if seconds is not None
            else "The deadline for the model call passed."
        )
        # A passed deadline is final; a per-wait timeout may succeed on another attempt.
        return _AttemptError(ProviderErrorKind.SERVER_ERROR, message, retryable=seconds is not None)

    def _status_failure(self, error: openai.APIStatusError) -> _AttemptError:
        status = error.status_code
        if status == 429:
            return _AttemptError(
                ProviderErrorKind.RATE_LIMIT,
                "The model provider is rate limiting requests (HTTP 429).",
                retryable=True,
                retry_after=_retry_after(error.response.headers),
            )
        if status == 408 or status >= 500:
            return _AttemptError(
                ProviderErrorKind.SERVER_ERROR,
                f"The model provider failed with HTTP {status}.",
                retryable=True,
            )
        if status in _CREDENTIAL_STATUSES:
            return _AttemptError(
                ProviderErrorKind.SERVER_ERROR,
                f"The model provider refused the configured credentials (HTTP {status}).",
                retryable=False,
            )
        if status in _INVALID_PROMPT_STATUSES:
            detail = self._clean(_upstream_message(error.body))
            message = f"The model provider rejected the request (HTTP {status})"
            return _AttemptError(
                ProviderErrorKind.INVALID_PROMPT,
                f"{message}: {detail}" if detail else f"{message}.",
                retryable=False,
            )
        return _AttemptError(
            ProviderErrorKind.SERVER_ERROR,
            f"The model provider rejected the request (HTTP {status}).",
            retryable=False,
        )

    def _retry_delay(
        self,
        failure: _AttemptError,
        attempt: int,
        started: bool,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
    ) -> float | None:
        """The pause before the next attempt, or None when the failure is final."""
        if started or not failure.retryable or attempt > self._retry.max_retries:
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self._retry.max_retry_after_seconds:
                return None
            delay = failure.retry_after + random.uniform(0, 0.05)
        else:
            delay = self._retry.backoff(attempt)
        if deadline is not None and loop.time() + delay >= deadline:
            return None
        return delay

    def _final_message(self, failure: _AttemptError, attempts: int) -> str:
        if attempts <= 1:
            return failure.message
        return f"{failure.message.rstrip('.')} (after {attempts} attempts)."

    def _clean(self, text: str | None) -> str:
        """A short, single-line upstream message with anything key-like masked."""
        if not text:
            return ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _KEY_LIKE.sub("***", " ".join(text.split()))
        if len(text) > _MESSAGE_LIMIT:
            text = text[: _MESSAGE_LIMIT - 1].rstrip() + "…"
        return text


def _is_timeout(error: BaseException) -> bool:
    """Whether a transport error is a timeout, judged by its causes as well as its type.

    The SDK's aiohttp transport reports a refused connection as a connect timeout, so the type
    alone would blame a dead server on slowness; the original error underneath tells them apart.
    """
    timeout_types = (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError)
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, TimeoutError):
            return True
        if isinstance(seen, OSError):
            return False
        seen = seen.__cause__ or seen.__context__
    return isinstance(error, timeout_types)


def _http_client(transport: HttpTransport, timeout_seconds: float) -> httpx2.AsyncClient | None:
    """The SDK's aiohttp-based client when wanted and possible; None leaves the SDK's default.

    Streaming through aiohttp takes about half the CPU per chunk of the default httpx2 transport,
    whose connection pool also gets slow with hundreds of concurrent streams.
    """
    if transport == "httpx":
        return None
    try:
        return openai.DefaultAioHttpClient(timeout=timeout_seconds)
    except RuntimeError:
        if transport == "aiohttp":
            raise ValueError("the aiohttp HTTP transport needs the aiohttp package") from None
        return None


async def _event_data(response: httpx2.Response) -> AsyncGenerator[bytes, None]:
    """The `data` of each server-sent event in the body of `response`.

    The body is split into lines here, in bytes, rather than through httpx's text and line
    decoders: a streamed reply arrives one small chunk per token, and each decoding layer is one
    more async generator step per chunk. A body with a content encoding is decoded first.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    body = response.aiter_raw() if encoding in ("", "identity") else response.aiter_bytes()
    pending = b""
    fields: list[bytes] = []
    async for piece in body:
        pending += piece
        if b"\r" in pending:
            # CRLF and a lone CR end lines too; a CR at the very end may be half of a CRLF.
            tail = b"\r" if pending.endswith(b"\r") else b""
            head = pending[: len(pending) - len(tail)]
            pending = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line:
                if line.startswith(b"data:"):
                    fields.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            # A blank line ends an event; one without data is nothing to deliver.
            if fields:
                yield fields[0] if len(fields) == 1 else b"\n".join(fields)
                fields = []


def _translate(chunk: _Chunk) -> list[ChatEvent]:
    events: list[ChatEvent] = []
    for choice in chunk.choices:
        # Only one completion is asked for; a server that sends more is not followed.
        if choice.index != 0:
            continue
        delta = choice.delta
        if delta is not None:
            if delta.content:
                events.append(TextDelta(delta.content))
            if delta.refusal:
                events.append(TextDelta(delta.refusal))
            if delta.tool_calls:
                for call in delta.tool_calls:
                    function = call.function
                    events.append(
                        ToolCallDelta(
                            index=call.index,
                            call_id=call.id,
                            name=function.name if function is not None else None,
                            arguments=(function.arguments or "") if function is not None else "",
                        )
                    )
        if choice.finish_reason is not None:
            events.append(Finish(_FINISH_REASONS.get(choice.finish_reason, FinishReason.STOP)))
    return events


def _upstream_message(body: object) -> str | None:
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message")
            return message if isinstance(message, str) else None
        if isinstance(error, str):
            return error
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
