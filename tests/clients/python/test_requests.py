"""Request messages from OpenAI-style keyword arguments, and the retry service config."""

from __future__ import annotations

import json

import pytest

from assistants.v1 import (
    assistant_service_pb2,
    common_pb2,
    run_service_pb2,
    thread_service_pb2,
)
from assistants_client.channels import RetryPolicy, service_config
from assistants_client.requests import build, build_update


def test_openai_shapes_become_their_protobuf_messages() -> None:
    request = build(
        run_service_pb2.CreateThreadAndRunRequest,
        {
            "assistant_id": "asst_1",
            "thread": {
                "messages": [
                    {"role": "user", "content": "plain"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        ],
                        "attachments": [{"file_id": "file_1", "tools": [{"type": "file_search"}]}],
                    },
                ],
                "metadata": {"k": "v"},
            },
            "tools": [
                {"type": "code_interpreter"},
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer"}},
            "truncation_strategy": {"type": "last_messages", "last_messages": 4},
            "temperature": None,
        },
    )
    plain, with_parts = request.thread.messages
    assert plain.text == "plain"
    assert [part.WhichOneof("part") for part in with_parts.parts.parts] == ["text", "image_url"]
    assert with_parts.parts.parts[1].image_url.url == "https://x/y.png"
    assert with_parts.attachments[0].tools[0].type == "file_search"
    assert request.tools[1].function.parameters["type"] == "object"
    assert request.tool_choice.tool.function.name == "f"
    assert request.response_format.json_schema.name == "answer"
    assert request.truncation_strategy.last_messages == 4
    assert not request.HasField("temperature")


def test_string_unions_and_ready_messages_are_accepted() -> None:
    tool = common_pb2.Tool(type="file_search")
    request = build(
        run_service_pb2.RunThreadRequest,
        {"tool_choice": "required", "response_format": "auto", "tools": [tool]},
    )
    assert request.tool_choice.mode == "required"
    assert request.response_format.type == "auto"
    assert request.tools[0] == tool


def test_a_misspelled_field_fails_before_the_call() -> None:
    with pytest.raises(ValueError, match=r"tools\[0\]"):
        build(
            assistant_service_pb2.CreateAssistantRequest,
            {"model": "m", "tools": [{"type": "function", "function": {"nmae": "f"}}]},
        )
    with pytest.raises(ValueError, match="unknown fields conten"):
        build(thread_service_pb2.CreateThreadRequest, {"messages": [{"conten": "x"}]})


def test_an_update_names_exactly_the_fields_given() -> None:
    request = build_update(
        assistant_service_pb2.UpdateAssistantRequest,
        {"assistant_id": "asst_1"},
        {"name": None, "metadata": {"a": "b"}},
    )
    assert list(request.update_mask.paths) == ["name", "metadata"]
    assert not request.HasField("name")
    assert dict(request.metadata) == {"a": "b"}


def test_the_retry_policy_covers_every_service() -> None:
    config = json.loads(service_config(RetryPolicy(max_attempts=5, initial_backoff=0.25)))
    (method_config,) = config["methodConfig"]
    assert {entry["service"] for entry in method_config["name"]} == {
        "assistants.v1.AssistantService",
        "assistants.v1.ThreadService",
        "assistants.v1.MessageService",
        "assistants.v1.RunService",
    }
    assert method_config["retryPolicy"]["maxAttempts"] == 5
    assert method_config["retryPolicy"]["initialBackoff"] == "0.25s"
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "retryPolicy" not in json.loads(service_config(None))["methodConfig"][0]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=9)
