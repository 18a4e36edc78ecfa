"""The fake upstream itself: behaviour specs, non-streamed answers and the separate-process mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

import assistants_grpc
from assistants_grpc.adapters.providers.openai_compatible import OpenAICompatibleProvider
from assistants_grpc.ports.model_provider import ChatRequest, Finish, FinishReason
from assistants_grpc.testing.chat import collect_events, joined_text, user_chat
from assistants_grpc.testing.fake_upstream import Behaviour, FakeToolCall, FakeUpstream

SERVICE_ROOT = Path(assistants_grpc.__file__).resolve().parent.parent


@pytest.fixture
async def sdk(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=upstream.base_url, max_retries=0)
    yield client
    await client.close()


# -- behaviour specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", Behaviour()),
        ("ok", Behaviour()),
        ("429", Behaviour(status=429)),
        ("rate_limit=0.5", Behaviour(status=429, retry_after=0.5)),
        ("500", Behaviour(status=500)),
        ("status=503,retry_after=2", Behaviour(status=503, retry_after=2.0)),
        ("slow=1.5", Behaviour(delay_seconds=1.5)),
        ("hang", Behaviour(hang=True)),
        ("malformed=3", Behaviour(malformed_after=3)),
        ("drop=4", Behaviour(drop_after=4)),
        ("stall=2", Behaviour(stall_after=2)),
        ("no_finish", Behaviour(omit_finish=True)),
        ("error_event=3", Behaviour(error_event_after=3)),
        ("tokens=7, delay_ms=5", Behaviour(tokens=7, token_delay_ms=5.0)),
        ("tools=2", Behaviour(auto_tool_calls=2)),
        ("text=hi there,finish=length", Behaviour(text="hi there", finish_reason="length")),
        ("400,message=Too long", Behaviour(status=400, message="Too long")),
    ],
)
def test_parses_behaviour_specs(spec: str, expected: Behaviour) -> None:
    assert Behaviour.parse(spec) == expected


@pytest.mark.parametrize("spec", ["teapot", "slow=soon", "status="])
def test_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fake behaviour"):
        Behaviour.parse(spec)


# -- answers ---------------------------------------------------------------------------------------


async def test_non_streamed_text_and_usage(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x" * 40}], max_completion_tokens=2
    )

    choice = completion.choices[0]
    assert choice.message.content == "The quick"
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 2)


async def test_non_streamed_parallel_tool_calls(
    sdk: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Behaviour.reply(tool_calls=[FakeToolCall("a", '{"x": 1}'), FakeToolCall("b")]))

    completion = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )

    calls = completion.choices[0].message.tool_calls or []
    assert [(call.type, call.function.name) for call in calls] == [  # type: ignore[union-attr]
        ("function", "a"),
        ("function", "b"),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_auto_tool_calls_then_text_after_the_tool_output(upstream: FakeUpstream) -> None:
    provider = OpenAICompatibleProvider.for_openai(
        label="t", api_key="k", base_url=upstream.base_url
    )
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    try:
        first = await collect_events(provider, user_chat(model="m@tools=2", tools=tools))
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ]
        second = await collect_events(
            provider, ChatRequest(model="m@tools=2", messages=messages, tools=tools)
        )
    finally:
        await provider.aclose()

    assert Finish(FinishReason.TOOL_CALLS) in first
    assert Finish(FinishReason.STOP) in second
    assert joined_text(second)


async def test_forced_tool_choice_is_honoured(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )

    calls = completion.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == ["lookup"]  # type: ignore[union-attr]


async def test_behaviour_from_header_and_model_name(
    sdk: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.RateLimitError) as by_header:
        await sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-behaviour": "rate_limit=3"},
        )
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(
            model="gpt@500", messages=[{"role": "user", "content": "hi"}]
        )

    assert by_header.value.response.headers["retry-after"] == "3"
    assert upstream.request_count == 2


async def test_records_requests_and_resets(sdk: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.3
    )

    assert upstream.request_count == 1
    assert upstream.requests[0].body["temperature"] == 0.3
    upstream.reset()
    assert upstream.request_count == 0
    assert upstream.requests == []


async def test_invalid_body_is_a_400(upstream: FakeUpstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{upstream.base_url}/chat/completions", data=b"{not json") as response,
    ):
        assert response.status == 400
        payload = await response.json()
    assert "messages" in payload["error"]["message"]


async def test_many_concurrent_paced_streams(upstream: FakeUpstream) -> None:
    provider = OpenAICompatibleProvider.for_openai(
        label="t", api_key="k", base_url=upstream.base_url
    )
    request = user_chat(model="m@tokens=10,delay_ms=10")
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(*[collect_events(provider, request) for _ in range(128)])
    finally:
        await provider.aclose()

    assert all(joined_text(events).startswith("The quick brown") for events in results)
    assert upstream.request_count == 128


# -- separate process ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_process(*arguments: str) -> AsyncIterator[str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SERVICE_ROOT), environment.get("PYTHONPATH")])
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistants_grpc.testing.fake_upstream",
        "--port",
        "0",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        env=environment,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
        yield line.decode().strip()
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
    assert process.returncode == 0


async def test_runs_as_a_separate_process() -> None:
    async with fake_process("--reply-tokens", "3", "--token-delay-ms", "1") as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        origin = base_url.removesuffix("/v1")
        provider = OpenAICompatibleProvider.for_openai(label="t", api_key="k", base_url=base_url)
        try:
            events = await collect_events(provider, user_chat())
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{origin}/_fake/behaviours", data=json.dumps(["500"])
                ) as queued:
                    assert queued.status == 200
                async with session.post(
                    f"{base_url}/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                ) as failed:
                    assert failed.status == 500
                async with session.get(f"{origin}/_fake/requests") as recorded:
                    report = await recorded.json()
        finally:
            await provider.aclose()

    assert joined_text(events) == "The quick brown"
    assert report["count"] == 2
    assert report["requests"][0]["body"]["stream"] is True
