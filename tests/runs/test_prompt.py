"""What a run sends to the model, read off the request bodies the fake upstream recorded: the
prompt (instructions, additional instructions, the thread under the truncation strategy,
additional messages, images) and every sampling and tool parameter."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from assistants.v1 import common_pb2, message_pb2
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import run_service_pb2 as rpb
from assistants_grpc.testing.fake_upstream import Behaviour

from .support import (
    RunServer,
    function_tool,
    names,
    new_assistant,
    new_thread,
    read_all,
)


async def run_to_end(server: RunServer, thread_id: str, assistant_id: str, **fields: Any) -> str:
    response = await server.runs.RunThread(
        rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id, **fields)
    )
    return str(response.run.status)


def sent_messages(server: RunServer) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = server.upstream.last_request.body["messages"]
    return messages


async def test_instructions_history_and_additional_messages(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs, instructions="Be kind.")
    thread_id = await new_thread(server.stubs, "Hi")
    assert await run_to_end(server, thread_id, assistant_id) == "completed"
    first_answer = sent_messages(server)

    status = await run_to_end(
        server,
        thread_id,
        assistant_id,
        additional_instructions="Answer in French.",
        additional_messages=[message_pb2.MessageInput(role="user", text="Bonjour?")],
    )

    assert first_answer == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
    ]
    assert status == "completed"
    assert sent_messages(server) == [
        {"role": "system", "content": "Be kind.\n\nAnswer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "The quick brown fox jumps over"},
        {"role": "user", "content": "Bonjour?"},
    ]
    # The run's own instructions replace the assistant's.
    await run_to_end(server, thread_id, assistant_id, instructions="Be terse.")
    assert sent_messages(server)[0] == {"role": "system", "content": "Be terse."}


async def test_truncation_keeps_the_last_messages(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs)
    thread_id = await new_thread(server.stubs, "one", "two", "three", "four")

    await run_to_end(
        server,
        thread_id,
        assistant_id,
        truncation_strategy=common_pb2.TruncationStrategy(type="last_messages", last_messages=2),
    )

    assert [m["content"] for m in sent_messages(server)] == ["Answer briefly.", "three", "four"]


async def test_auto_truncation_drops_the_oldest_turns_to_fit_max_prompt_tokens(
    server: RunServer,
) -> None:
    assistant_id = await new_assistant(server.stubs)
    # Four turns of about 250 tokens each (at four characters a token).
    thread_id = await new_thread(server.stubs, *(f"{n} " + "x" * 1000 for n in "ABCD"))

    status = await run_to_end(server, thread_id, assistant_id, max_prompt_tokens=600)

    assert status == "completed"
    assert [m["content"][0] for m in sent_messages(server)[1:]] == ["C", "D"]


async def test_a_prompt_over_max_prompt_tokens_ends_incomplete_without_a_model_call(
    server: RunServer,
) -> None:
    assistant_id = await new_assistant(server.stubs)
    thread_id = await new_thread(server.stubs, "x" * 2000)

    for strategy in ("auto", "last_messages"):
        events = await read_all(
            server.runs.RunThreadStream(
                rpb.RunThreadStreamRequest(
                    thread_id=thread_id,
                    assistant_id=assistant_id,
                    max_prompt_tokens=256,
                    truncation_strategy=common_pb2.TruncationStrategy(
                        type=strategy, last_messages=1 if strategy == "last_messages" else None
                    ),
                )
            )
        )
        assert names(events) == [
            "thread.run.created",
            "thread.run.queued",
            "thread.run.in_progress",
            "thread.run.incomplete",
            "done",
        ]
        assert events[-2].run.incomplete_details.reason == "max_prompt_tokens"
    assert server.upstream.request_count == 0


async def test_budgets_count_what_earlier_calls_of_the_run_used(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs, tools=[function_tool("lookup")])
    thread_id = await new_thread(server.stubs, "y" * 1000)
    server.upstream.enqueue(Behaviour(auto_tool_calls=1))
    waiting = await server.runs.RunThread(
        rpb.RunThreadRequest(
            thread_id=thread_id,
            assistant_id=assistant_id,
            max_completion_tokens=300,
            max_prompt_tokens=300,
            truncation_strategy=common_pb2.TruncationStrategy(
                type="last_messages", last_messages=10
            ),
        )
    )
    assert server.upstream.last_request.body["max_completion_tokens"] == 300
    [call] = waiting.run.required_action.submit_tool_outputs.tool_calls

    events = await read_all(
        server.runs.SubmitToolOutputsStream(
            rpb.SubmitToolOutputsStreamRequest(
                thread_id=thread_id,
                run_id=waiting.run.id,
                tool_outputs=[rpb.ToolOutput(tool_call_id=call.id, output="z" * 200)],
            )
        )
    )

    # The first call's prompt (about 250 tokens) left too little of the 300 for the second.
    assert server.upstream.request_count == 1
    assert names(events)[-2:] == ["thread.run.incomplete", "done"]
    run = events[-2].run
    assert run.incomplete_details.reason == "max_prompt_tokens"
    assert run.usage.prompt_tokens > 250


async def test_sampling_and_tool_parameters_reach_the_model(server: RunServer) -> None:
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"answer": {"type": "string"}}})
    assistant_id = await new_assistant(
        server.stubs, tools=[function_tool("lookup", "Looks things up"), function_tool("other")]
    )
    thread_id = await new_thread(server.stubs, "Hi")
    server.upstream.enqueue(Behaviour.reply("done"))

    await run_to_end(
        server,
        thread_id,
        assistant_id,
        model="fake-special",
        temperature=0.25,
        top_p=0.75,
        max_completion_tokens=400,
        parallel_tool_calls=False,
        reasoning_effort="low",
        tool_choice=common_pb2.ToolChoice(
            tool=common_pb2.NamedToolChoice(
                type="function", function=common_pb2.FunctionName(name="other")
            )
        ),
        response_format=common_pb2.ResponseFormat(
            json_schema=common_pb2.JsonSchemaResponseFormat(
                name="reply", schema=schema, strict=True
            )
        ),
    )

    body = server.upstream.last_request.body
    assert body["model"] == "fake-special"
    assert body["stream"] is True
    assert (body["temperature"], body["top_p"]) == (0.25, 0.75)
    assert body["max_completion_tokens"] == 400
    assert body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "low"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "other"}}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Looks things up",
                "parameters": {"type": "object", "properties": {}},
            },
        },
        {
            "type": "function",
            "function": {"name": "other", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "reply",
            "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
            "strict": True,
        },
    }


async def test_unset_parameters_are_left_to_the_model(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs)
    thread_id = await new_thread(server.stubs, "Hi")

    await run_to_end(server, thread_id, assistant_id)

    body = server.upstream.last_request.body
    for absent in (
        "temperature",
        "top_p",
        "max_completion_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    ):
        assert absent not in body, absent


async def test_the_assistants_sampling_and_tool_choice_none(server: RunServer) -> None:
    assistant_id = await new_assistant(
        server.stubs,
        tools=[function_tool("lookup")],
        temperature=0.5,
        top_p=0.9,
        response_format=common_pb2.ResponseFormat(type="json_object"),
    )
    thread_id = await new_thread(server.stubs, "Hi")

    await run_to_end(
        server, thread_id, assistant_id, tool_choice=common_pb2.ToolChoice(mode="none")
    )

    body = server.upstream.last_request.body
    assert (body["temperature"], body["top_p"]) == (0.5, 0.9)
    assert body["response_format"] == {"type": "json_object"}
    assert body["tool_choice"] == "none"
    assert body["parallel_tool_calls"] is True


async def test_images_are_sent_as_content_parts(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs)
    thread_id = await new_thread(server.stubs)
    await server.stubs.messages.CreateMessage(
        mpb.CreateMessageRequest(
            thread_id=thread_id,
            role="user",
            parts=message_pb2.MessageContentParts(
                parts=[
                    message_pb2.MessageContentPartInput(text="What is this?"),
                    message_pb2.MessageContentPartInput(
                        image_url=message_pb2.ImageUrl(url="https://example.test/a.png")
                    ),
                ]
            ),
        )
    )

    await run_to_end(server, thread_id, assistant_id)

    assert sent_messages(server)[-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
        ],
    }
