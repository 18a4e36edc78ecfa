"""AssistantsClient against the real service, in process.

The server runs on the test's event loop, so the sync client's blocking calls run in a thread.
"""

from __future__ import annotations

import asyncio

import pytest

from assistants_client import (
    AssistantsClient,
    InvalidArgumentError,
    NotFoundError,
    ToolOutputParam,
    message_text,
)

from ..conftest import WEATHER_TOOL

MODEL = "scripted-demo"


def quick_start_with_a_function_call(target: str) -> list[str]:
    """The seed document's Quick Start, then a function call; returns the thread's texts."""
    with AssistantsClient(target) as client:
        assistants = client.get_assistants()
        assert list(assistants.data) == []
        assistant = client.create_assistant(
            model=MODEL, instructions="Be brief.", tools=[WEATHER_TOOL], response_format="auto"
        )
        thread = client.create_thread(messages=[{"role": "user", "content": "Hey!"}])
        client.add_message(
            thread.id,
            role="user",
            content=[
                {"type": "text", "text": "What is the weather here?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/sky.png"}},
            ],
        )

        with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            run = stream.until_done()
        assert run.status == "requires_action"
        outputs: list[ToolOutputParam] = [
            {"tool_call_id": call.id, "output": "21 C"} for call in stream.required_tool_calls
        ]
        with client.submit_tool_outputs_stream(thread.id, run.id, tool_outputs=outputs) as answer:
            text = "".join(answer.text_deltas())
            assert answer.until_done().status == "completed"
        assert [message_text(m) for m in answer.final_messages()] == [text]

        # A plain RunThread on the same thread: it returns the run once it ended.
        client.add_message(thread.id, role="user", content="thanks")
        assert client.run_thread(thread.id, assistant_id=assistant.id).status == "completed"
        return [message_text(m) for m in client.iter_messages(thread.id, order="asc")]


async def test_quick_start_with_a_function_call(target: str) -> None:
    texts = await asyncio.to_thread(quick_start_with_a_function_call, target)
    assert texts == [
        "Hey!",
        "What is the weather here?",
        "The tool returned: 21 C",
        "thanks",
        "You said: thanks",
    ]


def failing_calls(target: str) -> tuple[InvalidArgumentError, NotFoundError]:
    with AssistantsClient(target) as client:
        with pytest.raises(InvalidArgumentError) as invalid:
            client.add_message("thread_x", role="robot", content="hi")  # type: ignore[arg-type]
        with pytest.raises(NotFoundError) as missing:
            client.get_run("thread_x", "run_x")
        return invalid.value, missing.value


async def test_errors_are_typed_with_their_details(target: str) -> None:
    invalid, missing = await asyncio.to_thread(failing_calls, target)
    assert [v.field for v in invalid.field_violations] == ["role"]
    assert "role" in str(invalid)
    assert missing.reason.endswith("NOT_FOUND")
