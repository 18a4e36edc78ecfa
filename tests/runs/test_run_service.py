"""The unary RPCs of RunService: OpenAI's fields, defaults and limits; waiting calls; the
state machine's refusals (FAILED_PRECONDITION for every move the state does not allow); tool
output checks; and one active run per thread, also under concurrent CreateRun calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from assistants.v1 import common_pb2, thread_pb2
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import run_service_pb2 as rpb
from assistants.v1.message_pb2 import MessageInput
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.testing.fake_upstream import Behaviour

from ..grpc.rich_errors import invalid_field, not_found, rpc_error
from .conftest import ServerFactory
from .support import (
    MODEL,
    RunServer,
    check_stream,
    function_tool,
    names,
    new_assistant,
    new_thread,
    new_thread_with_assistant,
    read_all,
    stored_state,
    text_of,
    wait_for_status,
)


@pytest.fixture
async def idle(start_server: ServerFactory) -> AsyncIterator[RunServer]:
    """A server that executes nothing: its runs stay where the caller put them."""
    async with start_server(worker_concurrency=0) as running:
        yield running


async def waiting_for_tools(server: RunServer) -> tuple[str, rpb.RunThreadResponse]:
    """A run in `requires_action` for two parallel calls of `lookup`."""
    thread_id = await new_thread(server.stubs, "Look two things up")
    assistant_id = await new_assistant(server.stubs, tools=[function_tool("lookup")])
    server.upstream.enqueue(Behaviour(auto_tool_calls=2))
    response = await server.runs.RunThread(
        rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    assert response.run.status == "requires_action"
    return thread_id, response


# --- starting runs ------------------------------------------------------------------------


async def test_create_run_returns_the_queued_run_with_openai_defaults(idle: RunServer) -> None:
    assistant_id = await new_assistant(
        idle.stubs,
        instructions="Be kind.",
        tools=[function_tool("lookup")],
        temperature=0.3,
        response_format=common_pb2.ResponseFormat(type="json_object"),
    )
    thread_id = await new_thread(idle.stubs, "Hi")

    run = (
        await idle.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    ).run

    assert run.id.startswith("run_")
    assert run.object == "thread.run"
    assert (run.thread_id, run.assistant_id, run.status) == (thread_id, assistant_id, "queued")
    assert (run.model, run.instructions) == (MODEL, "Be kind.")
    assert [t.function.name for t in run.tools] == ["lookup"]
    assert run.temperature == pytest.approx(0.3)
    assert not run.HasField("top_p")
    assert run.response_format.type == "json_object"
    assert run.truncation_strategy.type == "auto"
    assert run.tool_choice.mode == "auto"
    assert run.parallel_tool_calls is True
    assert run.expires_at == run.created_at + 600
    assert not run.HasField("started_at")
    assert not run.HasField("usage")
    assert not run.HasField("max_prompt_tokens")
    assert not run.HasField("max_completion_tokens")
    assert dict(run.metadata) == {}
    got = await idle.runs.GetRun(rpb.GetRunRequest(thread_id=thread_id, run_id=run.id))
    assert got.run == run


async def test_create_run_overrides_the_assistant(idle: RunServer) -> None:
    assistant_id = await new_assistant(idle.stubs, instructions="Be kind.")
    thread_id = await new_thread(idle.stubs, "Hi")

    run = (
        await idle.runs.CreateRun(
            rpb.CreateRunRequest(
                thread_id=thread_id,
                assistant_id=assistant_id,
                model="fake-other",
                instructions="Be terse.",
                additional_instructions="Answer in French.",
                additional_messages=[MessageInput(role="user", text="And one more thing")],
                tools=[function_tool("search")],
                metadata={"team": "a"},
                temperature=1.5,
                top_p=0.5,
                max_prompt_tokens=1000,
                max_completion_tokens=500,
                truncation_strategy=common_pb2.TruncationStrategy(
                    type="last_messages", last_messages=3
                ),
                tool_choice=common_pb2.ToolChoice(
                    tool=common_pb2.NamedToolChoice(
                        type="function", function=common_pb2.FunctionName(name="search")
                    )
                ),
                parallel_tool_calls=False,
                response_format=common_pb2.ResponseFormat(type="text"),
                reasoning_effort="low",
            )
        )
    ).run

    assert (run.model, run.instructions) == ("fake-other", "Be terse.\n\nAnswer in French.")
    assert [t.function.name for t in run.tools] == ["search"]
    assert dict(run.metadata) == {"team": "a"}
    assert (run.temperature, run.top_p) == (1.5, 0.5)
    assert (run.max_prompt_tokens, run.max_completion_tokens) == (1000, 500)
    assert (run.truncation_strategy.type, run.truncation_strategy.last_messages) == (
        "last_messages",
        3,
    )
    assert run.tool_choice.tool.function.name == "search"
    assert run.parallel_tool_calls is False
    assert run.response_format.type == "text"
    assert run.reasoning_effort == "low"
    # The additional messages are stored on the thread, after what was there.
    listed = await idle.stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=thread_id, order="asc")
    )
    assert [text_of(m) for m in listed.data] == ["Hi", "And one more thing"]


@pytest.mark.parametrize(
    ("fields", "field_path"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_prompt_tokens": 255}, "max_prompt_tokens"),
        ({"max_completion_tokens": 10}, "max_completion_tokens"),
        ({"model": "nobody-serves-this"}, "model"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"tools": [function_tool(f"f{i}") for i in range(21)]}, "tools"),
        ({"instructions": "x" * 256_001}, "instructions"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        (
            {"truncation_strategy": common_pb2.TruncationStrategy(type="last_messages")},
            "truncation_strategy.last_messages",
        ),
        (
            {
                "tool_choice": common_pb2.ToolChoice(
                    tool=common_pb2.NamedToolChoice(
                        type="function", function=common_pb2.FunctionName(name="missing")
                    )
                )
            },
            "tool_choice.tool.function.name",
        ),
    ],
)
async def test_create_run_limits(idle: RunServer, fields: dict[str, Any], field_path: str) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(idle.stubs)
    await invalid_field(
        idle.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id, **fields)
        ),
        field_path,
    )
    # Nothing was started: the thread is free for a valid run.
    await idle.runs.CreateRun(rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id))


async def test_create_run_names_what_it_cannot_find(idle: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(idle.stubs)
    await not_found(
        idle.runs.CreateRun(rpb.CreateRunRequest(thread_id=thread_id, assistant_id="asst_missing")),
        "asst_missing",
    )
    await not_found(
        idle.runs.CreateRun(
            rpb.CreateRunRequest(thread_id="thread_missing", assistant_id=assistant_id)
        ),
        "thread_missing",
    )


async def test_create_thread_and_run_returns_the_queued_run(idle: RunServer) -> None:
    assistant_id = await new_assistant(idle.stubs)

    run = (
        await idle.runs.CreateThreadAndRun(
            rpb.CreateThreadAndRunRequest(
                assistant_id=assistant_id,
                thread=thread_pb2.ThreadInput(messages=[MessageInput(role="user", text="Hi")]),
                metadata={"m": "1"},
            )
        )
    ).run

    assert run.status == "queued"
    assert run.thread_id.startswith("thread_")
    assert dict(run.metadata) == {"m": "1"}
    listed = await idle.stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=run.thread_id)
    )
    assert [text_of(m) for m in listed.data] == ["Hi"]
    await invalid_field(
        idle.runs.CreateThreadAndRun(
            rpb.CreateThreadAndRunRequest(
                assistant_id=assistant_id,
                thread=thread_pb2.ThreadInput(messages=[MessageInput(role="robot", text="Hi")]),
            )
        ),
        "thread.messages[0].role",
    )


# --- waiting for runs ---------------------------------------------------------------------


async def test_run_thread_waits_for_the_end(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)

    run = (
        await server.runs.RunThread(
            rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    ).run

    assert run.status == "completed"
    assert run.usage.total_tokens > 0
    state = await stored_state(server.stubs, thread_id, run.id)
    assert state.run == run
    assert [m.status for m in state.messages] == ["completed"]


async def test_run_thread_answers_just_before_the_callers_deadline(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=200, token_delay_ms=20))

    started = time.monotonic()
    response = await server.runs.RunThread(
        rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id), timeout=2.0
    )

    # The run as it is, rather than DEADLINE_EXCEEDED.
    assert time.monotonic() - started < 2.0
    assert response.run.status == "in_progress"
    # The deadline went on to the model call: nobody waits for the run any more, so the call
    # is cut when it passes.
    ended = await wait_for_status(server.stubs, thread_id, response.run.id, {"failed"})
    assert ended.last_error.code == "server_error"
    await server.upstream.wait_for_disconnects(1)


# --- reading and updating -----------------------------------------------------------------


async def test_list_runs_pages_like_openai(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    ids = []
    for _ in range(3):
        run = await server.runs.RunThread(
            rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        ids.append(run.run.id)

    first = await server.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id, limit=2))
    second = await server.runs.ListRuns(
        rpb.ListRunsRequest(thread_id=thread_id, limit=2, after=first.last_id)
    )
    ascending = await server.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id, order="asc"))

    assert first.object == "list"
    assert first.has_more
    assert [r.id for r in first.data] == ids[::-1][:2] == [first.first_id, first.last_id]
    assert [r.id for r in second.data] == ids[:1]
    assert not second.has_more
    assert [r.id for r in ascending.data] == ids
    await invalid_field(
        server.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id, limit=101)), "limit"
    )
    await not_found(
        server.runs.ListRuns(rpb.ListRunsRequest(thread_id="thread_missing")), "thread_missing"
    )


async def test_update_run_changes_only_metadata_in_any_state(server: RunServer) -> None:
    thread_id, waiting = await waiting_for_tools(server)
    run_id = waiting.run.id

    updated = await server.runs.UpdateRun(
        rpb.UpdateRunRequest(thread_id=thread_id, run_id=run_id, metadata={"ticket": "42"})
    )
    assert dict(updated.run.metadata) == {"ticket": "42"}
    assert updated.run.status == "requires_action"

    # The metadata survives the engine's later writes.
    calls = waiting.run.required_action.submit_tool_outputs.tool_calls
    await server.runs.SubmitToolOutputs(
        rpb.SubmitToolOutputsRequest(
            thread_id=thread_id,
            run_id=run_id,
            tool_outputs=[rpb.ToolOutput(tool_call_id=c.id, output="x") for c in calls],
        )
    )
    done = await wait_for_status(server.stubs, thread_id, run_id, {"completed"})
    assert dict(done.metadata) == {"ticket": "42"}

    cleared = await server.runs.UpdateRun(
        rpb.UpdateRunRequest(
            thread_id=thread_id,
            run_id=run_id,
            update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
        )
    )
    assert dict(cleared.run.metadata) == {}
    assert cleared.run.status == "completed"
    error = await rpc_error(
        server.runs.UpdateRun(
            rpb.UpdateRunRequest(thread_id=thread_id, run_id=run_id, metadata={"k" * 65: "v"})
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [path.split("[")[0] for path in error.violations] == ["metadata"]
    await not_found(
        server.runs.UpdateRun(
            rpb.UpdateRunRequest(thread_id=thread_id, run_id="run_missing", metadata={"a": "b"})
        ),
        "run_missing",
    )


async def test_run_steps_can_be_read_and_listed(server: RunServer) -> None:
    thread_id, waiting = await waiting_for_tools(server)
    run_id = waiting.run.id
    calls = waiting.run.required_action.submit_tool_outputs.tool_calls
    await server.runs.SubmitToolOutputs(
        rpb.SubmitToolOutputsRequest(
            thread_id=thread_id,
            run_id=run_id,
            tool_outputs=[rpb.ToolOutput(tool_call_id=c.id, output="x") for c in calls],
        )
    )
    await wait_for_status(server.stubs, thread_id, run_id, {"completed"})

    listed = await server.runs.ListRunSteps(
        rpb.ListRunStepsRequest(thread_id=thread_id, run_id=run_id)
    )
    first = await server.runs.ListRunSteps(
        rpb.ListRunStepsRequest(thread_id=thread_id, run_id=run_id, limit=1, order="asc")
    )
    step = await server.runs.GetRunStep(
        rpb.GetRunStepRequest(thread_id=thread_id, run_id=run_id, step_id=first.first_id)
    )

    # Newest first by default, as OpenAI lists.
    assert [s.type for s in listed.data] == ["message_creation", "tool_calls"]
    assert first.has_more
    assert step.run_step == listed.data[1]
    assert step.run_step.object == "thread.run.step"
    assert step.run_step.id.startswith("step_")
    assert [c.function.output for c in step.run_step.step_details.tool_calls] == ["x", "x"]
    assert step.run_step.usage.total_tokens > 0
    other_thread = await new_thread(server.stubs)
    await not_found(
        server.runs.GetRunStep(
            rpb.GetRunStepRequest(thread_id=other_thread, run_id=run_id, step_id=first.first_id)
        ),
        first.first_id,
    )
    await not_found(
        server.runs.ListRunSteps(rpb.ListRunStepsRequest(thread_id=thread_id, run_id="run_nope")),
        "run_nope",
    )


# --- the state machine --------------------------------------------------------------------


async def test_one_active_run_per_thread(idle: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(idle.stubs)
    request = rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)

    outcomes = await asyncio.gather(
        *(idle.runs.CreateRun(request) for _ in range(20)), return_exceptions=True
    )

    started = [o for o in outcomes if isinstance(o, rpb.CreateRunResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(started) == 1
    assert len(refused) == 19
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    listed = await idle.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id))
    assert [r.id for r in listed.data] == [started[0].run.id]

    # Nor can a message be added while the run is active...
    error = await rpc_error(
        idle.stubs.messages.CreateMessage(
            mpb.CreateMessageRequest(thread_id=thread_id, role="user", text="Also this")
        )
    )
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "THREAD_HAS_ACTIVE_RUN",
    )
    # ... until it has ended.
    await idle.runs.CancelRun(rpb.CancelRunRequest(thread_id=thread_id, run_id=started[0].run.id))
    await idle.stubs.messages.CreateMessage(
        mpb.CreateMessageRequest(thread_id=thread_id, role="user", text="Also this")
    )
    await idle.runs.CreateRun(request)


async def test_moves_the_state_does_not_allow_are_refused(server: RunServer) -> None:
    thread_id, waiting = await waiting_for_tools(server)
    run_id = waiting.run.id

    async def refused(call: object, reason: str) -> None:
        error = await rpc_error(call)  # type: ignore[arg-type]
        assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)

    # A second run while one waits for tool outputs.
    assistant_id = waiting.run.assistant_id
    await refused(
        server.runs.CreateRun(rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)),
        "THREAD_HAS_ACTIVE_RUN",
    )
    # Cancelling from requires_action is allowed, and ends the run at once.
    asked = await read_all(
        server.runs.SubscribeRun(rpb.SubscribeRunRequest(thread_id=thread_id, run_id=run_id))
    )
    cancelled = await server.runs.CancelRun(
        rpb.CancelRunRequest(thread_id=thread_id, run_id=run_id)
    )
    assert cancelled.run.status == "cancelled"
    assert not cancelled.run.HasField("required_action")
    events = await read_all(
        server.runs.SubscribeRun(
            rpb.SubscribeRunRequest(
                thread_id=thread_id, run_id=run_id, after_sequence_number=len(asked)
            )
        )
    )
    check_stream(events, earlier=asked)
    assert names(events) == [
        "thread.run.cancelling",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    # Nothing moves an ended run.
    await refused(
        server.runs.CancelRun(rpb.CancelRunRequest(thread_id=thread_id, run_id=run_id)),
        "RUN_ALREADY_ENDED",
    )
    calls = waiting.run.required_action.submit_tool_outputs.tool_calls
    await refused(
        server.runs.SubmitToolOutputs(
            rpb.SubmitToolOutputsRequest(
                thread_id=thread_id,
                run_id=run_id,
                tool_outputs=[rpb.ToolOutput(tool_call_id=c.id, output="x") for c in calls],
            )
        ),
        "RUN_NOT_WAITING_FOR_TOOL_OUTPUTS",
    )
    # Tool outputs to a run that never asked for them.
    finished = await server.runs.RunThread(
        rpb.RunThreadRequest(thread_id=thread_id, assistant_id=await new_assistant(server.stubs))
    )
    assert finished.run.status == "completed"
    await refused(
        server.runs.SubmitToolOutputs(
            rpb.SubmitToolOutputsRequest(
                thread_id=thread_id,
                run_id=finished.run.id,
                tool_outputs=[rpb.ToolOutput(tool_call_id="call_x", output="x")],
            )
        ),
        "RUN_NOT_WAITING_FOR_TOOL_OUTPUTS",
    )


async def test_concurrent_cancels_cancel_once(server: RunServer) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs)
    server.upstream.enqueue(Behaviour(tokens=200, token_delay_ms=20))
    call = server.runs.RunThreadStream(
        rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
    )
    first = await call.read()
    assert isinstance(first, RunStreamEvent)
    assert first.event == "thread.run.created"
    await wait_for_status(server.stubs, thread_id, first.run_id, {"in_progress"})

    request = rpb.CancelRunRequest(thread_id=thread_id, run_id=first.run_id)
    outcomes = await asyncio.gather(
        *(server.runs.CancelRun(request) for _ in range(3)), return_exceptions=True
    )

    # The first cancel moves the run to `cancelling`; the others find it cancelling (and
    # agree) or already cancelled (and say so).
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert outcome.code() == grpc.StatusCode.FAILED_PRECONDITION, outcome
        else:
            assert isinstance(outcome, rpb.CancelRunResponse)
            assert outcome.run.status in ("cancelling", "cancelled")
    events = [first, *await read_all(call)]
    check_stream(events)
    assert names(events).count("thread.run.cancelling") == 1
    assert events[-2].run.status == "cancelled"


@pytest.mark.parametrize(
    ("outputs", "field_path"),
    [
        ([], "tool_outputs"),
        ([0], "tool_outputs"),
        ([0, 1, 1], "tool_outputs[2].tool_call_id"),
        ([0, "call_unknown"], "tool_outputs[1].tool_call_id"),
        ([0, ""], "tool_outputs[1].tool_call_id"),
    ],
    ids=["none", "one missing", "duplicate", "unknown", "empty id"],
)
async def test_tool_outputs_must_answer_each_call_once(
    server: RunServer, outputs: list[int | str], field_path: str
) -> None:
    thread_id, waiting = await waiting_for_tools(server)
    calls = waiting.run.required_action.submit_tool_outputs.tool_calls
    ids = [calls[o].id if isinstance(o, int) else o for o in outputs]

    await invalid_field(
        server.runs.SubmitToolOutputs(
            rpb.SubmitToolOutputsRequest(
                thread_id=thread_id,
                run_id=waiting.run.id,
                tool_outputs=[rpb.ToolOutput(tool_call_id=i, output="x") for i in ids],
            )
        ),
        field_path,
    )
    # The run still waits, and a complete answer is accepted.
    queued = await server.runs.SubmitToolOutputs(
        rpb.SubmitToolOutputsRequest(
            thread_id=thread_id,
            run_id=waiting.run.id,
            tool_outputs=[rpb.ToolOutput(tool_call_id=c.id, output="x") for c in calls],
        )
    )
    assert queued.run.status == "queued"
    assert not queued.run.HasField("required_action")
