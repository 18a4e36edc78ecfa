"""Runs whose worker died: found through their expired lease, resumed (what the dead worker
left open is failed, and the model is asked again) or, after three interrupted attempts, failed;
either way SubscribeRun reaches `done`. Waiting for tool outputs is not an interruption."""

from __future__ import annotations

import msgspec
import pytest

from assistants.v1 import run_service_pb2 as rpb
from assistants_grpc.application import run_log
from assistants_grpc.application.context import DEFAULT_PROJECT, now
from assistants_grpc.domain.ids import IdPrefix, new_id
from assistants_grpc.domain.models import (
    ContentDelta,
    EventPayload,
    Message,
    MessageDelta,
    MessageStatus,
    RunStatus,
    RunStep,
)
from assistants_grpc.ports.storage import Storage

from .conftest import ServerFactory
from .support import (
    check_stream,
    function_tool,
    last_run,
    names,
    new_thread_with_assistant,
    only,
    read_all,
    stored_state,
    text_of,
)
from .test_streams import RESUMED_AFTER_RESTART

GIVEN_UP = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta+",
    "thread.message.incomplete",
    "thread.run.step.failed",
    "thread.run.failed",
    "done",
]
FOUR_TOOL_ROUNDS = """
turns:
  - tool_calls: [{name: lookup, arguments: {n: 1}}]
  - tool_calls: [{name: lookup, arguments: {n: 2}}]
  - tool_calls: [{name: lookup, arguments: {n: 3}}]
  - tool_calls: [{name: lookup, arguments: {n: 4}}]
  - reply: All four looked up.
"""


async def leave_interrupted(storage: Storage, run_id: str, claims: int) -> None:
    """Makes a queued run look like one whose worker died mid-answer, `claims` times over: it
    is `in_progress`, with a step and a message open and two words streamed, and its lease ran
    out long ago (as after kill -9)."""
    async with storage.transaction() as tx:
        for claim_number in range(claims):
            long_ago = now() - 1000 + claim_number * 10
            [claim] = await tx.claim_runs("dead-replica", long_ago, 2, 1)
        run = msgspec.structs.replace(
            claim.run,
            status=RunStatus.IN_PROGRESS,
            started_at=now(),
            execution_attempt=claim.attempt - claims + 1,
        )
        assert await tx.update_run(run, fence=claim)
        message = Message(
            id=new_id(IdPrefix.MESSAGE),
            project_id=DEFAULT_PROJECT,
            thread_id=run.thread_id,
            created_at=now(),
            role="assistant",
            status=MessageStatus.IN_PROGRESS,
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = RunStep(
            id=new_id(IdPrefix.STEP),
            project_id=DEFAULT_PROJECT,
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            created_at=now(),
            type="message_creation",
            message_id=message.id,
        )
        await tx.insert_step(step)
        await tx.insert_messages([message])
        events: list[tuple[str, EventPayload]] = [
            ("thread.run.in_progress", run),
            ("thread.run.step.created", step),
            ("thread.run.step.in_progress", step),
            ("thread.message.created", message),
            ("thread.message.in_progress", message),
        ]
        events += [
            (
                "thread.message.delta",
                MessageDelta(id=message.id, content=[ContentDelta(index=0, text=piece)]),
            )
            for piece in ("Half", " an")
        ]
        await run_log.append(tx, run_id, events)


@pytest.mark.parametrize(
    ("earlier_claims", "sequence"),
    [(1, RESUMED_AFTER_RESTART), (2, RESUMED_AFTER_RESTART), (3, GIVEN_UP)],
    ids=["first interruption", "second interruption", "third interruption"],
)
async def test_a_run_whose_worker_died_is_resumed_or_given_up(
    start_server: ServerFactory, earlier_claims: int, sequence: list[str]
) -> None:
    async with start_server(worker_concurrency=0) as idle:
        thread_id, assistant_id = await new_thread_with_assistant(idle.stubs)
        created = await idle.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        await leave_interrupted(idle.app.storage, created.run.id, earlier_claims)

    async with start_server() as server:
        events = await read_all(
            server.runs.SubscribeRun(
                rpb.SubscribeRunRequest(thread_id=thread_id, run_id=created.run.id)
            )
        )
        state = await stored_state(server.stubs, thread_id, created.run.id)

    check_stream(events)
    assert names(events) == sequence
    interrupted = only(events, "thread.message.incomplete").message
    # What clients saw of the interrupted message is kept in it.
    assert text_of(interrupted) == "Half an"
    assert interrupted.incomplete_details.reason == "run_failed"
    failed_step = only(events, "thread.run.step.failed").run_step
    assert failed_step.last_error.code == "server_error"
    run = last_run(events)
    assert state.run == run
    if sequence is GIVEN_UP:
        assert run.status == "failed"
        assert run.last_error.code == "server_error"
        assert "interrupted 3 times" in run.last_error.message
        assert server.upstream.request_count == 0
        assert [s.status for s in state.steps] == ["failed"]
    else:
        assert run.status == "completed"
        assert server.upstream.request_count == 1
        assert [(s.type, s.status) for s in state.steps] == [
            ("message_creation", "failed"),
            ("message_creation", "completed"),
        ]
        assert [m.status for m in state.messages] == ["incomplete", "completed"]


async def test_tool_rounds_are_not_counted_as_interruptions(start_server: ServerFactory) -> None:
    async with start_server(scripts={"scripted-rounds": FOUR_TOOL_ROUNDS}) as server:
        thread_id, assistant_id = await new_thread_with_assistant(
            server.stubs,
            model="scripted-rounds",
            tools=[function_tool("lookup")],
        )
        response = await server.runs.RunThread(
            rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
        rounds = 0
        run = response.run
        while run.status == "requires_action":
            rounds += 1
            [call] = run.required_action.submit_tool_outputs.tool_calls
            events = await read_all(
                server.runs.SubmitToolOutputsStream(
                    rpb.SubmitToolOutputsStreamRequest(
                        thread_id=thread_id,
                        run_id=run.id,
                        tool_outputs=[rpb.ToolOutput(tool_call_id=call.id, output=str(rounds))],
                    )
                )
            )
            run = last_run(events)

        assert rounds == 4
        assert run.status == "completed", run.last_error
        state = await stored_state(server.stubs, thread_id, run.id)
    assert [s.type for s in state.steps] == ["tool_calls"] * 4 + ["message_creation"]
    assert [text_of(m) for m in state.messages] == ["All four looked up."]
