"""Golden event sequences of runs: the names in order (deltas collapsed), sequence numbers,
the payload fields that matter, and the state the run leaves behind (GetRun, ListRunSteps,
ListMessages). The model is the fake upstream, reached through the real openai-SDK provider."""

from __future__ import annotations

import time

import grpc

from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import run_service_pb2 as rpb
from assistants.v1 import thread_pb2
from assistants.v1.message_pb2 import MessageInput
from assistants_grpc.testing.fake_upstream import Behaviour, FakeToolCall

from ..grpc.rich_errors import rpc_error
from .conftest import ServerFactory
from .support import (
    RunServer,
    check_stream,
    function_tool,
    last_run,
    names,
    new_assistant,
    new_thread,
    new_thread_with_assistant,
    only,
    read_all,
    read_until,
    stored_state,
    streamed_text,
    text_of,
)

RUN_STARTS = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
MESSAGE_STREAMS = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta+",
]
PLAIN_RUN = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]
TOOL_CALLS_REQUESTED = [
    *RUN_STARTS,
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta+",
    "thread.run.requires_action",
    "done",
]
TOOL_OUTPUTS_ANSWERED = [
    "thread.run.step.completed",
    "thread.run.queued",
    "thread.run.in_progress",
    *MESSAGE_STREAMS,
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]
TEXT_THEN_TOOL_CALL = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    # The message is complete before the step of the calls that follow it begins.
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta+",
    "thread.run.requires_action",
    "done",
]
CANCELLED_WHILE_STREAMING = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    "thread.run.cancelling",
    "thread.message.incomplete",
    "thread.run.step.cancelled",
    "thread.run.cancelled",
    "done",
]
CANCELLED_WHILE_QUEUED = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.cancelling",
    "thread.run.cancelled",
    "done",
]
EXPIRED_WAITING = ["thread.run.step.expired", "thread.run.expired", "done"]
CUT_BY_TOKEN_CAP = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    "thread.message.incomplete",
    "thread.run.step.completed",
    "thread.run.incomplete",
    "done",
]

FAKE_REPLY = "The quick brown fox jumps over"
"""The fake upstream's generated reply of six words."""


async def test_a_plain_run(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)

    events = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )

    check_stream(events)
    assert names(events) == PLAIN_RUN
    run = last_run(events)
    message = only(events, "thread.message.completed").message
    step = only(events, "thread.run.step.completed").run_step
    assert streamed_text(events, message.id) == text_of(message) == FAKE_REPLY
    assert message.assistant_id == assistant_id
    assert message.run_id == run.id
    assert message.HasField("completed_at")
    assert not message.HasField("incomplete_details")
    assert step.type == "message_creation"
    assert step.step_details.message_creation.message_id == message.id
    assert step.usage.completion_tokens == 6
    assert step.usage.prompt_tokens > 0
    assert run.usage.prompt_tokens == step.usage.prompt_tokens
    assert run.usage.completion_tokens == step.usage.completion_tokens
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    assert run.HasField("started_at")
    assert run.HasField("completed_at")
    assert not run.HasField("expires_at")
    assert not run.HasField("last_error")

    state = await stored_state(server.stubs, thread_id, run.id)
    assert state.run == run
    assert state.steps == [step]
    assert state.messages == [message]


async def test_a_parallel_function_call_answered_with_outputs(server: RunServer) -> None:
    thread_id = await new_thread(server.stubs, "Weather in Paris and Rome?")
    assistant_id = await new_assistant(server.stubs, tools=[function_tool("get_weather")])
    server.upstream.enqueue(Behaviour(auto_tool_calls=2))

    asked = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )

    check_stream(asked)
    assert names(asked) == TOOL_CALLS_REQUESTED
    waiting = last_run(asked)
    calls = waiting.required_action.submit_tool_outputs.tool_calls
    assert waiting.required_action.type == "submit_tool_outputs"
    assert [(c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("function", "get_weather", '{"n": 0}'),
        ("function", "get_weather", '{"n": 1}'),
    ]
    assert all(c.id.startswith("call_") for c in calls)
    assert waiting.HasField("expires_at")
    assert not waiting.HasField("usage")
    # The arguments streamed as step deltas, call by call, add up to the requested calls.
    step_id = only(asked, "thread.run.step.created").run_step.id
    streamed: dict[int, list[str]] = {}
    for event in asked:
        if event.event == "thread.run.step.delta":
            assert event.run_step_delta.id == step_id
            for call in event.run_step_delta.delta.step_details.tool_calls:
                streamed.setdefault(call.index, []).append(call.function.arguments)
    assert {i: "".join(parts) for i, parts in streamed.items()} == {
        0: '{"n": 0}',
        1: '{"n": 1}',
    }
    assert server.upstream.last_request.body["parallel_tool_calls"] is True
    # While it waits, the step holds the calls without outputs, and no usage yet.
    [waiting_step] = (await stored_state(server.stubs, thread_id, waiting.id)).steps
    assert waiting_step.status == "in_progress"
    assert not waiting_step.HasField("usage")
    assert [(c.id, c.function.arguments) for c in waiting_step.step_details.tool_calls] == [
        (c.id, c.function.arguments) for c in calls
    ]
    assert not any(c.function.HasField("output") for c in waiting_step.step_details.tool_calls)

    answered = await read_all(
        server.runs.SubmitToolOutputsStream(
            rpb.SubmitToolOutputsStreamRequest(
                thread_id=thread_id,
                run_id=waiting.id,
                tool_outputs=[
                    rpb.ToolOutput(tool_call_id=calls[0].id, output="18C"),
                    rpb.ToolOutput(tool_call_id=calls[1].id, output="24C"),
                ],
            )
        )
    )

    check_stream(answered, earlier=asked)
    assert names(answered) == TOOL_OUTPUTS_ANSWERED
    tool_step = answered[0].run_step
    assert tool_step.id == step_id
    assert tool_step.type == "tool_calls"
    assert [(c.id, c.function.output) for c in tool_step.step_details.tool_calls] == [
        (calls[0].id, "18C"),
        (calls[1].id, "24C"),
    ]
    # The second call sees the calls and their outputs, in the chat-completions shape.
    sent = server.upstream.last_request.body["messages"]
    assert sent[-3]["role"] == "assistant"
    assert [c["id"] for c in sent[-3]["tool_calls"]] == [c.id for c in calls]
    assert sent[-2:] == [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "24C"},
    ]

    finished = last_run(answered)
    state = await stored_state(server.stubs, thread_id, waiting.id)
    assert state.run == finished
    assert finished.status == "completed"
    assert [(s.type, s.status) for s in state.steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    assert state.steps[0] == tool_step
    assert [text_of(m) for m in state.messages] == [FAKE_REPLY]
    # The run's usage adds up both model calls.
    assert finished.usage.completion_tokens == sum(s.usage.completion_tokens for s in state.steps)
    assert finished.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in state.steps)


async def test_text_before_a_function_call(server: RunServer) -> None:
    thread_id = await new_thread(server.stubs, "Weather in Paris?")
    assistant_id = await new_assistant(server.stubs, tools=[function_tool("get_weather")])
    server.upstream.enqueue(
        Behaviour.reply(
            "Let me check.", tool_calls=[FakeToolCall("get_weather", '{"city": "Paris"}')]
        )
    )

    asked = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )

    check_stream(asked)
    assert names(asked) == TEXT_THEN_TOOL_CALL
    message = only(asked, "thread.message.completed").message
    assert text_of(message) == "Let me check."
    run_id = asked[0].run_id
    [call] = last_run(asked).required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')

    answered = await read_all(
        server.runs.SubmitToolOutputsStream(
            rpb.SubmitToolOutputsStreamRequest(
                thread_id=thread_id,
                run_id=run_id,
                tool_outputs=[rpb.ToolOutput(tool_call_id=call.id, output="18C")],
            )
        )
    )

    check_stream(answered, earlier=asked)
    assert names(answered) == TOOL_OUTPUTS_ANSWERED
    # The text and the call went back to the model as the one assistant turn they were.
    assert server.upstream.last_request.body["messages"][-2:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    state = await stored_state(server.stubs, thread_id, run_id)
    assert [(s.type, s.status) for s in state.steps] == [
        ("message_creation", "completed"),
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    assert [text_of(m) for m in state.messages] == ["Let me check.", FAKE_REPLY]


async def test_create_thread_and_run(server: RunServer) -> None:
    assistant_id = await new_assistant(server.stubs)

    events = await read_all(
        server.runs.CreateThreadAndRunStream(
            rpb.CreateThreadAndRunStreamRequest(
                assistant_id=assistant_id,
                thread=thread_pb2.ThreadInput(
                    messages=[MessageInput(role="user", text="Hi!")], metadata={"k": "v"}
                ),
            )
        )
    )

    check_stream(events)
    assert names(events) == ["thread.created", *PLAIN_RUN]
    thread = events[0].thread
    run = last_run(events)
    assert run.thread_id == thread.id
    assert thread.metadata == {"k": "v"}
    assert server.upstream.last_request.body["messages"][-1] == {"role": "user", "content": "Hi!"}
    listed = await server.stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=thread.id, order="asc")
    )
    assert [(m.role, text_of(m)) for m in listed.data] == [
        ("user", "Hi!"),
        ("assistant", FAKE_REPLY),
    ]


async def test_cancel_while_streaming(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=200, token_delay_ms=20))
    call = server.runs.RunThreadStream(
        rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    before = await read_until(call, "thread.message.delta")

    started = time.monotonic()
    cancelling = await server.runs.CancelRun(
        rpb.CancelRunRequest(thread_id=thread_id, run_id=before[0].run_id)
    )
    events = before + await read_all(call)
    took = time.monotonic() - started

    assert cancelling.run.status == "cancelling"
    check_stream(events)
    assert names(events) == CANCELLED_WHILE_STREAMING
    assert took < 2, "cancelling must not wait for the model to finish"
    # The model call in flight was aborted: the upstream saw its client go away.
    await server.upstream.wait_for_disconnects(1, within_seconds=2)
    message = only(events, "thread.message.incomplete").message
    assert message.incomplete_details.reason == "run_cancelled"
    assert text_of(message) == streamed_text(events, message.id) != ""
    run = last_run(events)
    assert run.HasField("cancelled_at")
    assert not run.HasField("expires_at")

    state = await stored_state(server.stubs, thread_id, run.id)
    assert state.run == run
    assert [(s.type, s.status, s.HasField("cancelled_at")) for s in state.steps] == [
        ("message_creation", "cancelled", True)
    ]
    assert state.messages == [message]


async def test_cancel_while_queued(start_server: ServerFactory) -> None:
    # No workers: nothing claims the run, so it stays queued until cancelled.
    async with start_server(worker_concurrency=0) as server:
        thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
        created = await server.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        call = server.runs.SubscribeRun(
            rpb.SubscribeRunRequest(thread_id=thread_id, run_id=created.run.id)
        )
        before = await read_until(call, "thread.run.queued")

        cancelled = await server.runs.CancelRun(
            rpb.CancelRunRequest(thread_id=thread_id, run_id=created.run.id)
        )
        events = before + await read_all(call)

        assert cancelled.run.status == "cancelled"
        check_stream(events)
        assert names(events) == CANCELLED_WHILE_QUEUED
        state = await stored_state(server.stubs, thread_id, created.run.id)
        assert state.run == last_run(events) == cancelled.run
        assert state.steps == []
        assert state.messages == []
        assert server.upstream.request_count == 0


async def test_expiry_while_waiting_for_tool_outputs(start_server: ServerFactory) -> None:
    async with start_server(run_expiry_seconds=1) as server:
        thread_id = await new_thread(server.stubs, "Weather?")
        assistant_id = await new_assistant(server.stubs, tools=[function_tool("get_weather")])
        server.upstream.enqueue(Behaviour(auto_tool_calls=1))
        asked = await read_all(
            server.runs.RunThreadStream(
                rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
            )
        )
        waiting = last_run(asked)
        assert waiting.status == "requires_action"

        started = time.monotonic()
        events = await read_all(
            server.runs.SubscribeRun(
                rpb.SubscribeRunRequest(
                    thread_id=thread_id,
                    run_id=waiting.id,
                    after_sequence_number=asked[-1].sequence_number,
                )
            )
        )

        assert time.monotonic() - started < 4
        check_stream(events, earlier=asked)
        assert names(events) == EXPIRED_WAITING
        expired = last_run(events)
        assert not expired.HasField("required_action")
        assert not expired.HasField("expires_at")
        state = await stored_state(server.stubs, thread_id, waiting.id)
        assert state.run == expired
        assert [(s.type, s.status, s.HasField("expired_at")) for s in state.steps] == [
            ("tool_calls", "expired", True)
        ]
        assert state.steps[0] == events[0].run_step
        # Outputs that come too late are refused.
        late = await rpc_error(
            server.runs.SubmitToolOutputs(
                rpb.SubmitToolOutputsRequest(
                    thread_id=thread_id,
                    run_id=waiting.id,
                    tool_outputs=[
                        rpb.ToolOutput(tool_call_id=c.id, output="late")
                        for c in waiting.required_action.submit_tool_outputs.tool_calls
                    ],
                )
            )
        )
        assert late.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_incomplete_on_the_completion_token_cap(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=300))

    events = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(
                thread_id=thread_id, assistant_id=assistant_id, max_completion_tokens=256
            )
        )
    )

    check_stream(events)
    assert names(events) == CUT_BY_TOKEN_CAP
    assert server.upstream.last_request.body["max_completion_tokens"] == 256
    run = last_run(events)
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 256
    message = only(events, "thread.message.incomplete").message
    assert message.incomplete_details.reason == "max_tokens"
    assert len(text_of(message).split()) == 256
    assert message.HasField("incomplete_at")
    state = await stored_state(server.stubs, thread_id, run.id)
    assert state.run == run
    assert state.messages == [message]
    assert [s.status for s in state.steps] == ["completed"]
