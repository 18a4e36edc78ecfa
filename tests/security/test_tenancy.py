"""Every object belongs to its key's project: another project's ids answer NOT_FOUND on every
RPC, lists show only the caller's objects, and nothing of another project can be changed."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from assistants.v1 import (
    assistant_service_pb2 as assistants_pb,
)
from assistants.v1 import (
    message_service_pb2 as messages_pb,
)
from assistants.v1 import (
    run_service_pb2 as runs_pb,
)
from assistants.v1 import (
    thread_service_pb2 as threads_pb,
)
from assistants.v1.message_pb2 import MessageInput
from assistants.v1.run_service_pb2 import ToolOutput
from assistants_grpc.composition import Application

from ..support.stubs import Stubs
from .clients import connect


@dataclass(frozen=True)
class Owned:
    """One project's objects: an assistant, a thread with a message, a finished run and its step."""

    assistant_id: str
    thread_id: str
    message_id: str
    run_id: str
    step_id: str


async def _populate(stubs: Stubs) -> Owned:
    assistant = (
        await stubs.assistants.CreateAssistant(
            assistants_pb.CreateAssistantRequest(model="scripted", name="private")
        )
    ).assistant
    thread = (
        await stubs.threads.CreateThread(
            threads_pb.CreateThreadRequest(messages=[MessageInput(role="user", text="secret")])
        )
    ).thread
    run = (
        await stubs.runs.RunThread(
            runs_pb.RunThreadRequest(thread_id=thread.id, assistant_id=assistant.id), timeout=10
        )
    ).run
    assert run.status == "completed"
    messages = await stubs.messages.ListMessages(
        messages_pb.ListMessagesRequest(thread_id=thread.id, order="asc")
    )
    steps = await stubs.runs.ListRunSteps(
        runs_pb.ListRunStepsRequest(thread_id=thread.id, run_id=run.id)
    )
    return Owned(assistant.id, thread.id, messages.data[0].id, run.id, steps.data[0].id)


Call = Callable[[Stubs, Owned, Owned], Any]
"""Makes a call as the intruder: (intruder's stubs, victim's objects, intruder's objects)."""

INTRUSIONS: dict[str, list[Call]] = {
    "GetAssistant": [
        lambda s, v, _: s.assistants.GetAssistant(
            assistants_pb.GetAssistantRequest(assistant_id=v.assistant_id)
        )
    ],
    "UpdateAssistant": [
        lambda s, v, _: s.assistants.UpdateAssistant(
            assistants_pb.UpdateAssistantRequest(assistant_id=v.assistant_id, name="taken")
        )
    ],
    "DeleteAssistant": [
        lambda s, v, _: s.assistants.DeleteAssistant(
            assistants_pb.DeleteAssistantRequest(assistant_id=v.assistant_id)
        )
    ],
    "GetThread": [
        lambda s, v, _: s.threads.GetThread(threads_pb.GetThreadRequest(thread_id=v.thread_id))
    ],
    "UpdateThread": [
        lambda s, v, _: s.threads.UpdateThread(
            threads_pb.UpdateThreadRequest(thread_id=v.thread_id, metadata={"k": "v"})
        )
    ],
    "DeleteThread": [
        lambda s, v, _: s.threads.DeleteThread(
            threads_pb.DeleteThreadRequest(thread_id=v.thread_id)
        )
    ],
    "CreateMessage": [
        lambda s, v, _: s.messages.CreateMessage(
            messages_pb.CreateMessageRequest(thread_id=v.thread_id, role="user", text="hi")
        )
    ],
    "GetMessage": [
        lambda s, v, _: s.messages.GetMessage(
            messages_pb.GetMessageRequest(thread_id=v.thread_id, message_id=v.message_id)
        ),
        lambda s, v, own: s.messages.GetMessage(
            messages_pb.GetMessageRequest(thread_id=own.thread_id, message_id=v.message_id)
        ),
    ],
    "ListMessages": [
        lambda s, v, _: s.messages.ListMessages(
            messages_pb.ListMessagesRequest(thread_id=v.thread_id)
        ),
    ],
    "UpdateMessage": [
        lambda s, v, _: s.messages.UpdateMessage(
            messages_pb.UpdateMessageRequest(
                thread_id=v.thread_id, message_id=v.message_id, metadata={"k": "v"}
            )
        )
    ],
    "DeleteMessage": [
        lambda s, v, _: s.messages.DeleteMessage(
            messages_pb.DeleteMessageRequest(thread_id=v.thread_id, message_id=v.message_id)
        )
    ],
    "CreateRun": [
        lambda s, v, own: s.runs.CreateRun(
            runs_pb.CreateRunRequest(thread_id=v.thread_id, assistant_id=own.assistant_id)
        ),
        lambda s, v, own: s.runs.CreateRun(
            runs_pb.CreateRunRequest(thread_id=own.thread_id, assistant_id=v.assistant_id)
        ),
    ],
    "RunThread": [
        lambda s, v, own: s.runs.RunThread(
            runs_pb.RunThreadRequest(thread_id=v.thread_id, assistant_id=own.assistant_id)
        ),
        lambda s, v, own: s.runs.RunThread(
            runs_pb.RunThreadRequest(thread_id=own.thread_id, assistant_id=v.assistant_id)
        ),
    ],
    "RunThreadStream": [
        lambda s, v, own: s.runs.RunThreadStream(
            runs_pb.RunThreadStreamRequest(thread_id=v.thread_id, assistant_id=own.assistant_id)
        )
    ],
    "CreateThreadAndRun": [
        lambda s, v, _: s.runs.CreateThreadAndRun(
            runs_pb.CreateThreadAndRunRequest(assistant_id=v.assistant_id)
        )
    ],
    "CreateThreadAndRunStream": [
        lambda s, v, _: s.runs.CreateThreadAndRunStream(
            runs_pb.CreateThreadAndRunStreamRequest(assistant_id=v.assistant_id)
        )
    ],
    "GetRun": [
        lambda s, v, _: s.runs.GetRun(
            runs_pb.GetRunRequest(thread_id=v.thread_id, run_id=v.run_id)
        ),
        lambda s, v, own: s.runs.GetRun(
            runs_pb.GetRunRequest(thread_id=own.thread_id, run_id=v.run_id)
        ),
    ],
    "ListRuns": [
        lambda s, v, _: s.runs.ListRuns(runs_pb.ListRunsRequest(thread_id=v.thread_id)),
    ],
    "UpdateRun": [
        lambda s, v, _: s.runs.UpdateRun(
            runs_pb.UpdateRunRequest(thread_id=v.thread_id, run_id=v.run_id, metadata={"k": "v"})
        )
    ],
    "CancelRun": [
        lambda s, v, _: s.runs.CancelRun(
            runs_pb.CancelRunRequest(thread_id=v.thread_id, run_id=v.run_id)
        )
    ],
    "SubmitToolOutputs": [
        lambda s, v, _: s.runs.SubmitToolOutputs(
            runs_pb.SubmitToolOutputsRequest(
                thread_id=v.thread_id,
                run_id=v.run_id,
                tool_outputs=[ToolOutput(tool_call_id="call_x", output="{}")],
            )
        )
    ],
    "SubmitToolOutputsStream": [
        lambda s, v, _: s.runs.SubmitToolOutputsStream(
            runs_pb.SubmitToolOutputsStreamRequest(
                thread_id=v.thread_id,
                run_id=v.run_id,
                tool_outputs=[ToolOutput(tool_call_id="call_x", output="{}")],
            )
        )
    ],
    "SubscribeRun": [
        lambda s, v, _: s.runs.SubscribeRun(
            runs_pb.SubscribeRunRequest(thread_id=v.thread_id, run_id=v.run_id)
        )
    ],
    "GetRunStep": [
        lambda s, v, _: s.runs.GetRunStep(
            runs_pb.GetRunStepRequest(thread_id=v.thread_id, run_id=v.run_id, step_id=v.step_id)
        )
    ],
    "ListRunSteps": [
        lambda s, v, _: s.runs.ListRunSteps(
            runs_pb.ListRunStepsRequest(thread_id=v.thread_id, run_id=v.run_id)
        )
    ],
}
# These take no id of an existing object; the lists are checked below instead.
WITHOUT_IDS = {"CreateAssistant", "ListAssistants", "CreateThread"}


async def _outcome(call: Any) -> grpc.StatusCode:
    try:
        if isinstance(call, AsyncIterable):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _details(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture
async def projects(app: Application, target: str) -> AsyncIterator[tuple[Stubs, Stubs]]:
    acme = connect(target, key=(await app.api_keys.create("acme")).secret)
    globex = connect(target, key=(await app.api_keys.create("globex")).secret)
    yield acme, globex
    await acme.close()
    await globex.close()


def test_every_rpc_with_an_id_is_checked_across_projects() -> None:
    every_rpc = {
        method.name
        for module, service in (
            (assistants_pb, "AssistantService"),
            (threads_pb, "ThreadService"),
            (messages_pb, "MessageService"),
            (runs_pb, "RunService"),
        )
        for method in module.DESCRIPTOR.services_by_name[service].methods
    }
    assert set(INTRUSIONS) | WITHOUT_IDS == every_rpc


async def test_another_projects_ids_are_not_found_everywhere(
    projects: tuple[Stubs, Stubs],
) -> None:
    acme, globex = projects
    victim = await _populate(acme)
    intruder = await _populate(globex)

    for rpc, calls in INTRUSIONS.items():
        for index, make_call in enumerate(calls):
            code = await _outcome(make_call(globex, victim, intruder))
            assert code == grpc.StatusCode.NOT_FOUND, (rpc, index, code)

    # A cursor of another project is refused exactly as one that never existed.
    foreign, unknown = [
        await _details(
            globex.messages.ListMessages(
                messages_pb.ListMessagesRequest(thread_id=intruder.thread_id, after=cursor)
            )
        )
        for cursor in (victim.message_id, "msg_" + "x" * len(victim.message_id[4:]))
    ]
    assert foreign[0] == unknown[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert foreign[1].replace(victim.message_id, "ID") == unknown[1].replace(
        "msg_" + "x" * len(victim.message_id[4:]), "ID"
    )

    listed = await globex.assistants.ListAssistants(assistants_pb.ListAssistantsRequest())
    assert [a.id for a in listed.data] == [intruder.assistant_id]
    # The victim's objects are untouched by all of the above.
    assert await _populate_unchanged(acme, victim)


async def _populate_unchanged(stubs: Stubs, owned: Owned) -> bool:
    assistant = (
        await stubs.assistants.GetAssistant(
            assistants_pb.GetAssistantRequest(assistant_id=owned.assistant_id)
        )
    ).assistant
    thread = (
        await stubs.threads.GetThread(threads_pb.GetThreadRequest(thread_id=owned.thread_id))
    ).thread
    messages = await stubs.messages.ListMessages(
        messages_pb.ListMessagesRequest(thread_id=owned.thread_id)
    )
    runs = await stubs.runs.ListRuns(runs_pb.ListRunsRequest(thread_id=owned.thread_id))
    return (
        assistant.name == "private"
        and not thread.metadata
        and len(messages.data) == 2
        and all(not m.metadata for m in messages.data)
        and [r.id for r in runs.data] == [owned.run_id]
        and not runs.data[0].metadata
    )
