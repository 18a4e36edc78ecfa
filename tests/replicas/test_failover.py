"""A replica killed with -9 mid-run: once its lease runs out another replica takes the run
over and resumes it from its last committed step. The interrupted step is marked failed and
its model call made again; completed steps and tool calls are never repeated, and a run that
was already waiting for tool outputs is left waiting."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from assistants.v1 import common_pb2, run_service_pb2

from .cluster import LEASE_SECONDS, MODEL, Cluster, model_calls, names, read_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(60)]

LOOKUP_TOOL = common_pb2.Tool(
    type="function",
    function=common_pb2.FunctionTool(
        name="lookup",
        parameters=struct_pb2.Struct(fields={"type": struct_pb2.Value(string_value="object")}),
    ),
)
# The fake answers a request naming this model with one tool call, and the request after the
# tool's output with text, whatever its queue holds.
WAITING_MODEL = f"{MODEL}@tools=1"


async def _tool_call_ids(cluster: Cluster, replica: int, thread_id: str, run_id: str) -> list[str]:
    run = await cluster.get_run(replica, thread_id, run_id)
    assert run.status == "requires_action", run
    return [call.id for call in run.required_action.submit_tool_outputs.tool_calls]


async def _submit(
    cluster: Cluster, replica: int, thread_id: str, run_id: str, call_ids: list[str]
) -> None:
    await cluster.stubs[replica].runs.SubmitToolOutputs(
        run_service_pb2.SubmitToolOutputsRequest(
            thread_id=thread_id,
            run_id=run_id,
            tool_outputs=[
                run_service_pb2.ToolOutput(tool_call_id=i, output="42") for i in call_ids
            ],
        )
    )


async def test_killed_replica_runs_resume_on_another_without_repeating_work(
    cluster: Cluster,
) -> None:
    upstream = cluster.upstream
    # The resumed run's model calls, in order: a tool call; after the tool's output a reply
    # paced over four seconds (the replica dies during it); the repeated call, answered at once.
    upstream.enqueue("tools=1", "tokens=200,delay_ms=20", "tokens=5")

    assistant_id, resumed_thread = await cluster.new_conversation(0)
    created = await cluster.stubs[0].runs.CreateRun(
        run_service_pb2.CreateRunRequest(
            thread_id=resumed_thread, assistant_id=assistant_id, tools=[LOOKUP_TOOL]
        )
    )
    resumed_run = created.run.id
    paused = await read_until(cluster.subscribe(1, resumed_thread, resumed_run), "done", timeout=10)
    first_calls = await _tool_call_ids(cluster, 1, resumed_thread, resumed_run)
    await _submit(cluster, 0, resumed_thread, resumed_run, first_calls)

    victim = await cluster.owner_of(resumed_run)
    survivor, other_survivor = cluster.others(victim)
    # A stream ends at each `done`; this one follows what comes after the tool outputs.
    watch = cluster.subscribe(
        survivor, resumed_thread, resumed_run, after=paused[-1].sequence_number
    )
    # The reply is streaming and part of it is committed.
    await read_until(watch, "thread.message.delta", timeout=10)

    # Meanwhile a second run on the doomed replica reaches requires_action: its executor is
    # done with it, so the kill must leave it exactly as it is.
    waiting_assistant, waiting_thread = await cluster.new_conversation(victim)
    waiting = await cluster.stubs[victim].runs.CreateRun(
        run_service_pb2.CreateRunRequest(
            thread_id=waiting_thread,
            assistant_id=waiting_assistant,
            model=WAITING_MODEL,
            tools=[LOOKUP_TOOL],
        )
    )
    waiting_run = waiting.run.id
    waiting_paused = await read_until(
        cluster.subscribe(survivor, waiting_thread, waiting_run), "done", timeout=10
    )
    waiting_calls = await _tool_call_ids(cluster, survivor, waiting_thread, waiting_run)
    assert model_calls(upstream, MODEL) == 2
    assert model_calls(upstream, WAITING_MODEL) == 1

    cluster.kill(victim)

    # The survivor's stream goes on: the lease runs out, another replica claims the run, closes
    # what the dead one left open and calls the model again.
    after_kill = await read_until(watch, "done", timeout=LEASE_SECONDS * 3 + 10)
    events = names(after_kill)
    assert "thread.run.step.failed" in events, events
    assert "thread.message.incomplete" in events, events
    assert events[-2:] == ["thread.run.completed", "done"], events
    assert events.index("thread.run.step.failed") < events.index("thread.message.created")

    # Three calls in all: the tool call was not made again, only the interrupted reply was,
    # and the repeated call carried the tool's output.
    assert model_calls(upstream, MODEL) == 3
    repeated = [r for r in upstream.requests if r.body.get("model") == MODEL][-1]
    assert any(m.get("role") == "tool" for m in repeated.body["messages"])

    replay = await cluster.read_log(other_survivor, resumed_thread, resumed_run)
    assert names(replay).count("thread.run.requires_action") == 1
    steps = await cluster.stubs[other_survivor].runs.ListRunSteps(
        run_service_pb2.ListRunStepsRequest(
            thread_id=resumed_thread, run_id=resumed_run, order="asc"
        )
    )
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"),
        ("message_creation", "failed"),
        ("message_creation", "completed"),
    ]
    tool_step, interrupted, _ = steps.data
    assert tool_step.step_details.tool_calls[0].function.output == "42"
    assert interrupted.last_error.code == "server_error"
    assert interrupted.last_error.message

    # The run that was waiting for tool outputs still waits for the same calls, and nobody
    # asked the model again on its behalf, though the dead replica's leases ran out long ago.
    assert await _tool_call_ids(cluster, survivor, waiting_thread, waiting_run) == waiting_calls
    assert model_calls(upstream, WAITING_MODEL) == 1
    await _submit(cluster, other_survivor, waiting_thread, waiting_run, waiting_calls)
    finished = await read_until(
        cluster.subscribe(
            survivor, waiting_thread, waiting_run, after=waiting_paused[-1].sequence_number
        ),
        "done",
        timeout=10,
    )
    assert finished[-2].event == "thread.run.completed"
    assert "thread.run.requires_action" not in names(finished)
    assert model_calls(upstream, WAITING_MODEL) == 2

    # The replica comes back and serves both runs as they are now.
    await cluster.restart(victim)
    for thread_id, run_id in ((resumed_thread, resumed_run), (waiting_thread, waiting_run)):
        assert (await cluster.get_run(victim, thread_id, run_id)).status == "completed"
