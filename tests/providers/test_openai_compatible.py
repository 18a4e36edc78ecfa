"""The openai-SDK adapter end to end against the fake upstream: no mocks, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from assistants_grpc.adapters.providers.openai_compatible import (
    HttpTransport,
    OpenAICompatibleProvider,
    RetryPolicy,
    _event_data,
    _retry_after,
)
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
from assistants_grpc.testing.chat import collect_events, drain_into, joined_text, user_chat
from assistants_grpc.testing.fake_upstream import Behaviour, FakeToolCall, FakeUpstream

TEST_API_KEY = "sk-test-0123456789abcdef"
FAST_RETRIES = RetryPolicy(max_retries=2, initial_backoff_seconds=0.01, max_backoff_seconds=0.02)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


ProviderFactory = Callable[..., OpenAICompatibleProvider]


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> HttpTransport:
    """Every adapter test runs over both HTTP transports the SDK client can use."""
    chosen: HttpTransport = request.param
    return chosen


@pytest.fixture
async def make_provider(
    upstream: FakeUpstream, transport: HttpTransport
) -> AsyncIterator[ProviderFactory]:
    """Build adapters on the fake upstream, with quick retries unless told otherwise."""
    built: list[OpenAICompatibleProvider] = []

    def build(
        *, timeout_seconds: float = 5.0, retry: RetryPolicy = FAST_RETRIES, **options: Any
    ) -> OpenAICompatibleProvider:
        provider = OpenAICompatibleProvider.for_openai(
            label="test-model",
            api_key=TEST_API_KEY,
            base_url=upstream.base_url,
            timeout_seconds=timeout_seconds,
            retry=retry,
            http_transport=transport,
            **options,
        )
        built.append(provider)
        return provider

    yield build
    for provider in built:
        await provider.aclose()


async def failure_of(provider: OpenAICompatibleProvider, request: ChatRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await collect_events(provider, request)
    return caught.value


def assert_clean(message: str) -> None:
    """Short, human-readable, without secrets or exception dumps."""
    assert TEST_API_KEY not in message
    assert "Traceback" not in message
    assert "Error(" not in message
    assert len(message) < 300


# -- happy paths -----------------------------------------------------------------------------------


async def test_streams_text_then_finish_then_usage(make_provider: ProviderFactory) -> None:
    events = await collect_events(make_provider(), user_chat("Hello there"))

    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) == 5
    assert joined_text(events) == "The quick brown fox jumps"
    assert events[-2:] == [Finish(FinishReason.STOP), TokenUsage(2, 5)]
    assert sum(isinstance(event, Finish) for event in events) == 1


async def test_streams_parallel_tool_calls(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        Behaviour.reply(
            tool_calls=[
                FakeToolCall("get_weather", '{"city": "Paris"}'),
                FakeToolCall("get_time", '{"zone": "Europe/Paris"}'),
            ]
        )
    )

    events = await collect_events(make_provider(), user_chat(tools=[WEATHER_TOOL]))

    calls: dict[int, dict[str, str]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += event.call_id or ""
            call["name"] += event.name or ""
            call["arguments"] += event.arguments
    assert [call["name"] for call in calls.values()] == ["get_weather", "get_time"]
    assert calls[0]["arguments"] == '{"city": "Paris"}'
    assert calls[1]["arguments"] == '{"zone": "Europe/Paris"}'
    assert all(call["id"].startswith("call_") for call in calls.values())
    assert sum(isinstance(event, ToolCallDelta) for event in events) > 4  # arguments in pieces
    assert Finish(FinishReason.TOOL_CALLS) in events


async def test_passes_every_request_field(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    request = user_chat(
        model="gpt-upstream",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=64,
        response_format={"type": "json_object"},
        reasoning_effort="low",
    )

    await collect_events(make_provider(), request)

    body = upstream.last_request.body
    assert body["model"] == "gpt-upstream"
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_completion_tokens"] == 64
    assert body["response_format"] == {"type": "json_object"}
    assert body["reasoning_effort"] == "low"
    assert upstream.last_request.headers["authorization"] == f"Bearer {TEST_API_KEY}"


async def test_leaves_out_unset_fields_and_tool_options_without_tools(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    await collect_events(make_provider(), user_chat(tool_choice="auto", parallel_tool_calls=True))

    assert set(upstream.last_request.body) == {"model", "messages", "stream", "stream_options"}


async def test_older_servers_get_max_tokens_and_no_stream_options(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    provider = make_provider(max_tokens_param="max_tokens", include_usage=False)

    events = await collect_events(provider, user_chat(max_completion_tokens=50))

    body = upstream.last_request.body
    assert body["max_tokens"] == 50
    assert "max_completion_tokens" not in body
    assert "stream_options" not in body
    assert not any(isinstance(event, TokenUsage) for event in events)


async def test_token_cap_finishes_with_length(make_provider: ProviderFactory) -> None:
    events = await collect_events(make_provider(), user_chat(max_completion_tokens=3))

    assert joined_text(events) == "The quick brown"
    assert Finish(FinishReason.LENGTH) in events


async def test_one_client_is_reused_across_calls(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    provider = make_provider()
    client = provider.client

    for _ in range(3):
        await collect_events(provider, user_chat())

    assert provider.client is client
    assert upstream.request_count == 3


# -- rate limits and retries -----------------------------------------------------------------------


async def test_rate_limit_is_retried_after_retry_after(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.rate_limit(retry_after=0.3))
    started = time.monotonic()

    events = await collect_events(make_provider(), user_chat())

    assert time.monotonic() - started >= 0.3
    assert joined_text(events) == "The quick brown fox jumps"
    assert upstream.request_count == 2


async def test_rate_limit_forever_fails_with_rate_limit(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(*[Behaviour.rate_limit(retry_after=0.01)] * 5)

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.RATE_LIMIT
    assert "429" in error.message
    assert "3 attempts" in error.message
    assert_clean(error.message)
    assert upstream.request_count == 3


async def test_rate_limit_asking_too_long_a_wait_fails_at_once(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.rate_limit(retry_after=120))
    started = time.monotonic()

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.RATE_LIMIT
    assert time.monotonic() - started < 1
    assert upstream.request_count == 1


async def test_server_error_is_retried_then_reported(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(*[Behaviour.error(500)] * 3)

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert "HTTP 500" in error.message
    assert_clean(error.message)
    assert upstream.request_count == 3


async def test_server_error_then_success(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.error(503), Behaviour.error(502))

    events = await collect_events(make_provider(), user_chat())

    assert Finish(FinishReason.STOP) in events
    assert upstream.request_count == 3


async def test_no_retries_when_disabled(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.error(500))

    error = await failure_of(make_provider(retry=RetryPolicy(max_retries=0)), user_chat())

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert "attempts" not in error.message
    assert upstream.request_count == 1


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_rejected_prompt_is_invalid_prompt_without_retry(
    make_provider: ProviderFactory, upstream: FakeUpstream, status: int
) -> None:
    upstream.enqueue(Behaviour(status=status, message="This model's context is too long."))

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.INVALID_PROMPT
    assert error.message == (
        f"The model provider rejected the request (HTTP {status}): "
        "This model's context is too long."
    )
    assert upstream.request_count == 1


async def test_upstream_messages_never_leak_keys(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    leaky = f"Bad request for key {TEST_API_KEY} and sk-proj-otherkey123456 " + "x" * 400
    upstream.enqueue(Behaviour(status=400, message=leaky))

    error = await failure_of(make_provider(), user_chat())

    assert TEST_API_KEY not in error.message
    assert "otherkey123456" not in error.message
    assert len(error.message) < 300


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_a_server_error(
    make_provider: ProviderFactory, upstream: FakeUpstream, status: int
) -> None:
    upstream.enqueue(Behaviour(status=status, message=f"Incorrect API key {TEST_API_KEY}"))

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert error.message == (
        f"The model provider refused the configured credentials (HTTP {status})."
    )
    assert upstream.request_count == 1


async def test_wrong_key_against_an_upstream_that_checks_it(transport: HttpTransport) -> None:
    async with FakeUpstream(required_api_key="sk-the-right-one") as fake:
        provider = OpenAICompatibleProvider.for_openai(
            label="t", api_key="sk-the-wrong-one", base_url=fake.base_url, http_transport=transport
        )
        try:
            error = await failure_of(provider, user_chat())
        finally:
            await provider.aclose()

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert "credentials" in error.message
    assert "sk-the-wrong-one" not in error.message


async def test_unreachable_upstream_is_a_server_error(transport: HttpTransport) -> None:
    async with FakeUpstream() as fake:
        base_url = fake.base_url  # the port is free again once the fake is closed
    provider = OpenAICompatibleProvider.for_openai(
        label="t",
        api_key=TEST_API_KEY,
        base_url=base_url,
        retry=RetryPolicy(max_retries=1, initial_backoff_seconds=0.01),
        http_transport=transport,
    )
    try:
        error = await failure_of(provider, user_chat())
    finally:
        await provider.aclose()

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert error.message == "Could not reach the model provider (after 2 attempts)."


# -- timeouts --------------------------------------------------------------------------------------


async def test_hanging_upstream_times_out_within_the_deployment_timeout(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.hanging(), Behaviour.hanging())
    provider = make_provider(timeout_seconds=0.3, retry=RetryPolicy(max_retries=1))
    started = time.monotonic()

    error = await failure_of(provider, user_chat())

    elapsed = time.monotonic() - started
    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert error.message == "The model provider did not answer within 0.3 s (after 2 attempts)."
    assert 0.6 <= elapsed < 2.0
    await upstream.wait_for_disconnects(2)


async def test_slow_first_byte_within_the_timeout_is_fine(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.slow(0.2))

    events = await collect_events(make_provider(timeout_seconds=2.0), user_chat())

    assert Finish(FinishReason.STOP) in events
    assert upstream.request_count == 1


async def test_the_callers_deadline_caps_the_call(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(*[Behaviour.hanging()] * 3)
    started = time.monotonic()

    error = await failure_of(make_provider(timeout_seconds=30.0), user_chat(timeout_seconds=0.3))

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert time.monotonic() - started < 1.0


async def test_an_expired_deadline_fails_without_calling(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    error = await failure_of(make_provider(), user_chat(timeout_seconds=0.0))

    assert error.message == "The deadline for the model call passed."
    assert upstream.request_count == 0


async def test_a_stall_mid_stream_times_out_without_retry(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(stall_after=3))
    seen: list[ChatEvent] = []

    with pytest.raises(ProviderError) as caught:
        await drain_into(make_provider(timeout_seconds=0.3).stream_chat(user_chat()), seen)

    assert caught.value.message == "The model provider did not answer within 0.3 s."
    assert seen == [TextDelta("The"), TextDelta(" quick")]
    assert upstream.request_count == 1
    await upstream.wait_for_disconnects(1)


async def test_a_stall_before_any_delta_is_retried(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(stall_after=1))

    events = await collect_events(make_provider(timeout_seconds=0.3), user_chat())

    assert joined_text(events) == "The quick brown fox jumps"
    assert upstream.request_count == 2


# -- broken streams --------------------------------------------------------------------------------


async def test_malformed_chunk_after_a_delta_fails_without_retry(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.malformed(after_chunks=3))
    seen: list[ChatEvent] = []

    with pytest.raises(ProviderError) as caught:
        await drain_into(make_provider().stream_chat(user_chat()), seen)

    assert caught.value.kind is ProviderErrorKind.SERVER_ERROR
    assert caught.value.message == "The model provider sent a malformed response chunk."
    assert seen == [TextDelta("The"), TextDelta(" quick")]
    assert upstream.request_count == 1


async def test_malformed_chunk_before_any_delta_is_retried(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.malformed(after_chunks=1))

    events = await collect_events(make_provider(), user_chat())

    assert joined_text(events) == "The quick brown fox jumps"
    assert upstream.request_count == 2


async def test_dropped_connection_mid_stream_fails_without_retry(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.dropped(after_chunks=3))
    seen: list[ChatEvent] = []

    with pytest.raises(ProviderError) as caught:
        await drain_into(make_provider().stream_chat(user_chat()), seen)

    assert caught.value.kind is ProviderErrorKind.SERVER_ERROR
    assert caught.value.message == "The connection to the model provider was lost."
    assert seen == [TextDelta("The"), TextDelta(" quick")]
    assert upstream.request_count == 1


async def test_dropped_connection_before_any_delta_is_retried(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.dropped(after_chunks=0), Behaviour.dropped(after_chunks=1))

    events = await collect_events(make_provider(), user_chat())

    assert joined_text(events) == "The quick brown fox jumps"
    assert upstream.request_count == 3


async def test_error_event_mid_stream_is_a_server_error(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(error_event_after=2, message="Overloaded, try later."))
    seen: list[ChatEvent] = []

    with pytest.raises(ProviderError) as caught:
        await drain_into(make_provider().stream_chat(user_chat()), seen)

    assert caught.value.kind is ProviderErrorKind.SERVER_ERROR
    assert caught.value.message == (
        "The model provider reported an error mid-response: Overloaded, try later."
    )
    assert seen == [TextDelta("The")]
    assert upstream.request_count == 1


async def test_stream_without_finish_reason_is_a_server_error(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(omit_finish=True))

    error = await failure_of(make_provider(), user_chat())

    assert error.kind is ProviderErrorKind.SERVER_ERROR
    assert error.message == "The model provider's response ended before it was complete."
    assert upstream.request_count == 1


# -- cancellation ----------------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_request(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(tokens=100, token_delay_ms=50))
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for event in make_provider().stream_chat(user_chat()):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(2):
        await first_delta.wait()
    task.cancel()
    started = time.monotonic()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    await upstream.wait_for_disconnects(1, within_seconds=1)
    assert time.monotonic() - started < 1
    assert upstream.request_count == 1


async def test_cancelling_while_waiting_for_the_first_byte(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.hanging())
    task = asyncio.create_task(collect_events(make_provider(), user_chat()))
    await upstream.wait_for_requests(1)

    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    await upstream.wait_for_disconnects(1, within_seconds=1)


async def test_closing_the_generator_early_closes_the_upstream_request(
    make_provider: ProviderFactory, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour(tokens=100, token_delay_ms=50))

    async with contextlib.aclosing(make_provider().stream_chat(user_chat())) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break

    await upstream.wait_for_disconnects(1, within_seconds=1)


# -- Azure -----------------------------------------------------------------------------------------


async def test_azure_client_calls_the_deployment_path(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    provider = OpenAICompatibleProvider.for_azure(
        label="azure-test",
        api_key=TEST_API_KEY,
        azure_endpoint=upstream.azure_endpoint,
        api_version="2024-10-21",
        retry=RetryPolicy(max_retries=0),
        http_transport=transport,
    )
    try:
        events = await collect_events(provider, user_chat(model="my-deployment"))
    finally:
        await provider.aclose()

    assert joined_text(events) == "The quick brown fox jumps"
    recorded = upstream.last_request
    assert recorded.path == "/openai/deployments/my-deployment/chat/completions"
    assert recorded.deployment == "my-deployment"
    assert recorded.query["api-version"] == "2024-10-21"
    assert recorded.headers["api-key"] == TEST_API_KEY


async def test_closing_releases_the_client(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    await collect_events(provider, user_chat())

    await provider.aclose()

    assert provider.client.is_closed()


# -- retry-after parsing and backoff ---------------------------------------------------------------


def test_retry_after_prefers_milliseconds() -> None:
    assert _retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert _retry_after({"retry-after": "1.5"}) == 1.5
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


def test_retry_after_accepts_an_http_date() -> None:
    in_ten_seconds = email.utils.formatdate(time.time() + 10, usegmt=True)

    seconds = _retry_after({"retry-after": in_ten_seconds})

    assert seconds is not None
    assert 8 <= seconds <= 10


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(initial_backoff_seconds=1.0, max_backoff_seconds=4.0)

    for retry_number, step in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = {policy.backoff(retry_number) for _ in range(20)}
        assert all(step / 2 <= delay <= step for delay in delays)
        assert len(delays) > 1


# -- server-sent events ----------------------------------------------------------------------------


class _Pieces(httpx2.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


async def _event_data_of(pieces: list[bytes], headers: dict[str, str] | None = None) -> list[bytes]:
    response = httpx2.Response(200, headers=headers or {}, stream=_Pieces(pieces))
    return [data async for data in _event_data(response)]


async def test_events_are_split_wherever_the_body_is_cut() -> None:
    body = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'

    for cut in range(1, len(body)):
        assert await _event_data_of([body[:cut], body[cut:]]) == [
            b'{"a": 1}',
            b'{"b": 2}',
            b"[DONE]",
        ]


async def test_events_accept_every_line_ending_even_split_across_pieces() -> None:
    assert await _event_data_of([b"data: one\r", b"\n\r\ndata: two\r\rdata:three\n\n"]) == [
        b"one",
        b"two",
        b"three",
    ]


async def test_event_fields_other_than_data_are_skipped_and_data_lines_joined() -> None:
    body = b": keep-alive\n\nevent: chunk\nid: 7\ndata: first\ndata: second\n\ndata: x"

    # The last event has no blank line after it: a stream cut there delivers nothing of it.
    assert await _event_data_of([body]) == [b"first\nsecond"]


async def test_a_compressed_body_is_decoded_first() -> None:
    body = gzip.compress(b"data: hello\n\ndata: [DONE]\n\n")

    assert await _event_data_of([body[:10], body[10:]], {"content-encoding": "gzip"}) == [
        b"hello",
        b"[DONE]",
    ]
