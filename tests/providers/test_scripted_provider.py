"""The scripted provider: every kind of turn, how turns are chosen, and script validation."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from assistants_grpc.adapters.providers.errors import ProviderConfigError
from assistants_grpc.adapters.providers.scripted import (
    ScriptedProvider,
    load_script,
    parse_script,
    split_text,
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


def scripted(text: str) -> ScriptedProvider:
    return ScriptedProvider.from_text(text)


def after_tool(output: str, user: str = "What is the weather?") -> ChatRequest:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": user},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": output},
    ]
    return ChatRequest(model="scripted", messages=messages)


def tool_calls_of(events: list[ChatEvent]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += event.call_id or ""
            call["name"] += event.name or ""
            call["arguments"] += event.arguments
    return calls


# -- the built-in script ---------------------------------------------------------------------------


async def test_default_script_echoes_the_last_user_message() -> None:
    events = await collect_events(ScriptedProvider(), user_chat("Hello, service!"))

    assert joined_text(events) == "You said: Hello, service!"
    assert events[-2] == Finish(FinishReason.STOP)
    assert isinstance(events[-1], TokenUsage)


async def test_default_script_reports_a_tool_result() -> None:
    events = await collect_events(ScriptedProvider(), after_tool("22 degrees"))

    assert joined_text(events) == "The tool returned: 22 degrees"


async def test_default_script_reads_text_parts() -> None:
    request = ChatRequest(
        model="scripted",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "you"}],
            }
        ],
    )

    events = await collect_events(ScriptedProvider(), request)

    assert joined_text(events) == "You said: Hi you"


# -- text ------------------------------------------------------------------------------------------


async def test_reply_is_streamed_word_by_word() -> None:
    provider = scripted("- reply: 'Hello there,  world!'")

    events = await collect_events(provider, user_chat())

    assert events[:3] == [TextDelta("Hello"), TextDelta(" there,"), TextDelta("  world!")]


@pytest.mark.parametrize(
    ("chunking", "pieces"),
    [
        ("words", ["a", " bc", " d", " "]),
        ("characters", ["a", " ", "b", "c", " ", "d", " "]),
        ("whole", ["a bc d "]),
    ],
)
def test_chunking_joins_back_exactly(chunking: Any, pieces: list[str]) -> None:
    assert split_text("a bc d ", chunking) == pieces
    assert "".join(split_text("a bc d ", chunking)) == "a bc d "


async def test_tokens_are_paced() -> None:
    provider = scripted("token_delay_ms: 30\nturns:\n  - reply: one two three four")
    started = time.monotonic()

    events = await collect_events(provider, user_chat())

    assert time.monotonic() - started >= 0.09
    assert joined_text(events) == "one two three four"


async def test_first_token_delay() -> None:
    provider = scripted("- reply: late\n  first_token_delay_ms: 100")
    started = time.monotonic()

    await collect_events(provider, user_chat())

    assert time.monotonic() - started >= 0.1


async def test_reply_finishing_with_length() -> None:
    provider = scripted("- reply: cut short\n  finish_reason: length")

    events = await collect_events(provider, user_chat())

    assert Finish(FinishReason.LENGTH) in events


async def test_max_completion_tokens_cuts_the_reply() -> None:
    provider = scripted("- reply: one two three four five")

    events = await collect_events(provider, user_chat(max_completion_tokens=2))

    assert joined_text(events) == "one two"
    assert Finish(FinishReason.LENGTH) in events


# -- tool calls ------------------------------------------------------------------------------------


async def test_parallel_tool_calls_stream_their_arguments_in_pieces() -> None:
    provider = scripted(
        """
        - tool_calls:
            - name: get_weather
              arguments: {city: Paris}
            - name: get_time
              arguments: '{"zone": "CET"}'
              id: call_fixed
          argument_chunks: 4
        """
    )

    events = await collect_events(provider, user_chat())

    calls = tool_calls_of(events)
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[0]["id"].startswith("call_")
    assert calls[1] == {"id": "call_fixed", "name": "get_time", "arguments": '{"zone": "CET"}'}
    argument_pieces = [e for e in events if isinstance(e, ToolCallDelta) and e.index == 0][1:]
    assert len(argument_pieces) == 4
    assert events[-2] == Finish(FinishReason.TOOL_CALLS)


async def test_text_before_tool_calls() -> None:
    provider = scripted("- reply: Let me check.\n  tool_calls: [{name: lookup}]")

    events = await collect_events(provider, user_chat())

    assert joined_text(events) == "Let me check."
    assert tool_calls_of(events)[0]["arguments"] == "{}"
    assert Finish(FinishReason.TOOL_CALLS) in events


async def test_tool_call_then_final_answer_after_the_tool_output() -> None:
    provider = scripted(
        """
        - when: {after_tool_output: true}
          reply: "It is {last_tool_output}."
        - tool_calls: [{name: get_weather, arguments: {city: Paris}}]
        """
    )

    first = await collect_events(provider, user_chat("Weather in Paris?"))
    second = await collect_events(provider, after_tool("sunny"))

    assert tool_calls_of(first)[0]["name"] == "get_weather"
    assert joined_text(second) == "It is sunny."


# -- errors and hangs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", ProviderErrorKind.RATE_LIMIT),
        ("server_error", ProviderErrorKind.SERVER_ERROR),
        ("invalid_prompt", ProviderErrorKind.INVALID_PROMPT),
    ],
)
async def test_scripted_errors(kind: str, expected: ProviderErrorKind) -> None:
    provider = scripted(f"- error: {kind}")

    with pytest.raises(ProviderError) as caught:
        await collect_events(provider, user_chat())

    assert caught.value.kind is expected
    assert caught.value.message


async def test_error_with_a_message_after_some_text() -> None:
    provider = scripted("- reply: partial answer\n  error: {kind: server_error, message: Boom.}")
    seen: list[ChatEvent] = []

    with pytest.raises(ProviderError) as caught:
        await drain_into(provider.stream_chat(user_chat()), seen)

    assert caught.value.message == "Boom."
    assert joined_text(seen) == "partial answer"
    assert not any(isinstance(event, Finish) for event in seen)


async def test_hang_lasts_until_cancelled() -> None:
    provider = scripted("- hang: true")
    task = asyncio.create_task(collect_events(provider, user_chat()))
    await asyncio.sleep(0.05)

    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_bounded_hang_without_answer_fails_like_a_timeout() -> None:
    provider = scripted("- hang: {seconds: 0.05}")

    with pytest.raises(ProviderError) as caught:
        await collect_events(provider, user_chat())

    assert caught.value.kind is ProviderErrorKind.SERVER_ERROR


async def test_bounded_hang_then_reply() -> None:
    provider = scripted("- hang: 0.05\n  reply: finally")
    started = time.monotonic()

    events = await collect_events(provider, user_chat())

    assert joined_text(events) == "finally"
    assert time.monotonic() - started >= 0.05


# -- usage -----------------------------------------------------------------------------------------


async def test_usage_is_estimated_at_four_characters_per_token() -> None:
    provider = scripted("- reply: '12345678'")

    events = await collect_events(provider, user_chat("x" * 40))

    assert events[-1] == TokenUsage(prompt_tokens=10, completion_tokens=2)


async def test_usage_can_be_scripted() -> None:
    provider = scripted("- reply: hi\n  usage: {prompt_tokens: 100, completion_tokens: 7}")

    events = await collect_events(provider, user_chat())

    assert events[-1] == TokenUsage(100, 7)


# -- choosing turns --------------------------------------------------------------------------------


async def test_turns_play_in_order_then_cycle() -> None:
    provider = scripted("- reply: one\n- reply: two")

    replies = [joined_text(await collect_events(provider, user_chat())) for _ in range(5)]

    assert replies == ["one", "two", "one", "two", "one"]
    assert provider.calls == 5


async def test_turns_can_repeat_the_last_one() -> None:
    provider = scripted("when_exhausted: repeat_last\nturns:\n  - reply: one\n  - reply: two")

    replies = [joined_text(await collect_events(provider, user_chat())) for _ in range(4)]

    assert replies == ["one", "two", "two", "two"]


async def test_rules_match_on_the_last_user_message_and_are_not_used_up() -> None:
    provider = scripted(
        """
        turns:
          - when: {last_user_message_contains: WEATHER}
            reply: sunny
          - when: {last_user_message_matches: '^\\d+$'}
            reply: a number
          - reply: plain
        """
    )

    replies = [
        joined_text(await collect_events(provider, user_chat(text)))
        for text in ["How is the weather?", "42", "hello", "weather again"]
    ]

    assert replies == ["sunny", "a number", "plain", "sunny"]


async def test_rules_can_match_the_model_name() -> None:
    provider = scripted("- when: {model: 'scripted-slow*'}\n  reply: slow\n- reply: fast")

    slow = await collect_events(provider, user_chat(model="scripted-slow-1"))
    fast = await collect_events(provider, user_chat(model="scripted"))

    assert (joined_text(slow), joined_text(fast)) == ("slow", "fast")


async def test_only_rules_fall_back_to_echo() -> None:
    provider = scripted("- when: {after_tool_output: true}\n  reply: done")

    events = await collect_events(provider, user_chat("ping"))

    assert joined_text(events) == "You said: ping"


async def test_requests_are_kept_for_inspection() -> None:
    provider = ScriptedProvider()
    request = user_chat("remember me", temperature=0.5)

    await collect_events(provider, request)

    assert provider.requests == [request]


# -- files and validation --------------------------------------------------------------------------


def test_loads_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "script.yaml"
    yaml_file.write_text("turns:\n  - reply: from yaml\n", encoding="utf-8")
    json_file = tmp_path / "script.json"
    json_file.write_text('{"turns": [{"reply": "from json"}]}', encoding="utf-8")

    assert load_script(yaml_file).turns[0].reply == "from yaml"
    assert ScriptedProvider.from_file(json_file).script.turns[0].reply == "from json"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="cannot be read"):
        load_script(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- error: {kind: teapot}", "turns[0].error.kind: Input should be 'rate_limit'"),
        ("- {}", "turns[0]: a turn needs a reply, tool_calls, an error or a hang"),
        ("- reply: x\n  colour: red", "turns[0].colour: Extra inputs are not permitted"),
        ("- reply: x\n  when: {}", "turns[0].when: `when` needs at least one condition"),
        ("- reply: x\n  hang: true", "a turn that hangs until cancelled cannot also answer"),
        ("- tool_calls: []", "tool_calls must not be empty"),
        ("- tool_calls: [{name: f, arguments: 'not json'}]", "must be JSON text"),
        ("- reply: x\n  token_delay_ms: -1", "turns[0].token_delay_ms: Input should be greater"),
        ("- when: {last_user_message_matches: '('}\n  reply: x", "not a valid regular expression"),
        ("turns: []", "turns: List should have at least 1 item"),
        ("- reply: [unclosed", "is not valid YAML or JSON (line 1"),
        ("", "is empty"),
    ],
)
def test_invalid_scripts_say_where_and_why(text: str, expected: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        parse_script(text, source="demo.yaml")

    assert str(caught.value).startswith("demo.yaml is ")
    assert expected in str(caught.value)
