"""Every assistant, thread and message belongs to the project of the API key that created it;
another project's ids answer NOT_FOUND, exactly as ids that do not exist."""

from __future__ import annotations

from dataclasses import dataclass

from assistants.v1 import assistant_service_pb2 as apb
from assistants.v1 import message_pb2
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import thread_service_pb2 as tpb
from assistants_grpc.composition import Application

from ..support.stubs import Stubs
from .rich_errors import invalid_field, not_found


@dataclass
class Caller:
    project: str
    metadata: tuple[tuple[str, str], ...]


async def caller(app: Application, project: str) -> Caller:
    key = await app.api_keys.create(project, f"{project} tests")
    return Caller(project, (("authorization", f"Bearer {key.secret}"),))


async def test_objects_belong_to_the_callers_project(
    app_and_stubs: tuple[Application, Stubs],
) -> None:
    app, stubs = app_and_stubs
    alpha, beta = await caller(app, "alpha"), await caller(app, "beta")

    assistant = (
        await stubs.assistants.CreateAssistant(
            apb.CreateAssistantRequest(model="scripted-echo", name="alpha's"),
            metadata=alpha.metadata,
        )
    ).assistant
    thread = (
        await stubs.threads.CreateThread(
            tpb.CreateThreadRequest(messages=[message_pb2.MessageInput(role="user", text="hi")]),
            metadata=alpha.metadata,
        )
    ).thread
    message = (
        await stubs.messages.CreateMessage(
            mpb.CreateMessageRequest(thread_id=thread.id, role="user", text="more"),
            metadata=alpha.metadata,
        )
    ).message

    async with app.storage.read() as session:
        assert await session.get_assistant("alpha", assistant.id) is not None
        assert await session.get_assistant("beta", assistant.id) is None
        stored_thread = await session.get_thread("alpha", thread.id)
        stored_messages = await session.all_messages("alpha", thread.id)
    assert stored_thread is not None
    assert stored_thread.project_id == "alpha"
    assert [m.id for m in stored_messages][-1] == message.id
    assert {m.project_id for m in stored_messages} == {"alpha"}

    listed = await stubs.assistants.ListAssistants(
        apb.ListAssistantsRequest(), metadata=alpha.metadata
    )
    assert [a.id for a in listed.data] == [assistant.id]
    listed = await stubs.assistants.ListAssistants(
        apb.ListAssistantsRequest(), metadata=beta.metadata
    )
    assert not listed.data


async def test_another_projects_ids_are_not_found(
    app_and_stubs: tuple[Application, Stubs],
) -> None:
    app, stubs = app_and_stubs
    alpha, beta = await caller(app, "alpha"), await caller(app, "beta")
    assistant = (
        await stubs.assistants.CreateAssistant(
            apb.CreateAssistantRequest(model="scripted-echo"), metadata=alpha.metadata
        )
    ).assistant
    thread = (
        await stubs.threads.CreateThread(tpb.CreateThreadRequest(), metadata=alpha.metadata)
    ).thread
    message = (
        await stubs.messages.CreateMessage(
            mpb.CreateMessageRequest(thread_id=thread.id, role="user", text="secret"),
            metadata=alpha.metadata,
        )
    ).message
    theirs = beta.metadata

    await not_found(
        stubs.assistants.GetAssistant(
            apb.GetAssistantRequest(assistant_id=assistant.id), metadata=theirs
        ),
        assistant.id,
    )
    await not_found(
        stubs.assistants.UpdateAssistant(
            apb.UpdateAssistantRequest(assistant_id=assistant.id, name="mine now"),
            metadata=theirs,
        ),
        assistant.id,
    )
    await not_found(
        stubs.assistants.DeleteAssistant(
            apb.DeleteAssistantRequest(assistant_id=assistant.id), metadata=theirs
        ),
        assistant.id,
    )
    await not_found(
        stubs.threads.GetThread(tpb.GetThreadRequest(thread_id=thread.id), metadata=theirs),
        thread.id,
    )
    await not_found(
        stubs.threads.UpdateThread(
            tpb.UpdateThreadRequest(thread_id=thread.id, metadata={"a": "b"}), metadata=theirs
        ),
        thread.id,
    )
    await not_found(
        stubs.threads.DeleteThread(tpb.DeleteThreadRequest(thread_id=thread.id), metadata=theirs),
        thread.id,
    )
    await not_found(
        stubs.messages.CreateMessage(
            mpb.CreateMessageRequest(thread_id=thread.id, role="user", text="intrude"),
            metadata=theirs,
        ),
        thread.id,
    )
    await not_found(
        stubs.messages.ListMessages(mpb.ListMessagesRequest(thread_id=thread.id), metadata=theirs),
        thread.id,
    )
    for call in (
        stubs.messages.GetMessage(mpb.GetMessageRequest(message_id=message.id), metadata=theirs),
        stubs.messages.UpdateMessage(
            mpb.UpdateMessageRequest(message_id=message.id, metadata={"a": "b"}), metadata=theirs
        ),
        stubs.messages.DeleteMessage(
            mpb.DeleteMessageRequest(message_id=message.id), metadata=theirs
        ),
    ):
        await not_found(call, message.id)
    # Nor can another project's id serve as a list cursor.
    await invalid_field(
        stubs.assistants.ListAssistants(
            apb.ListAssistantsRequest(after=assistant.id), metadata=theirs
        ),
        "after",
    )

    # Everything is still there, unchanged, for its own project.
    ours = alpha.metadata
    fetched = await stubs.assistants.GetAssistant(
        apb.GetAssistantRequest(assistant_id=assistant.id), metadata=ours
    )
    assert fetched.assistant == assistant
    messages = await stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=thread.id), metadata=ours
    )
    assert list(messages.data) == [message]
