"""MessageService through the generated stubs: content as text or parts, attachments, metadata,
the run_id filter, and thread_id as an optional cross-check on per-id calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from assistants.v1 import assistant_service_pb2 as apb
from assistants.v1 import message_pb2
from assistants.v1 import message_service_pb2 as pb
from assistants.v1 import run_service_pb2 as rpb
from assistants.v1 import thread_service_pb2 as tpb

from ..support.servers import in_process_server, server_settings
from ..support.stubs import Stubs
from .rich_errors import invalid_field, not_found, rpc_error

HANGING_MODEL = "scripted-hang"


@pytest.fixture
async def hanging_model_stubs(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Stubs]:
    """A server whose only model never answers, so that a run stays active until cancelled."""
    script = tmp_path / "hang.yaml"
    script.write_text("turns:\n  - hang: true\n")
    models = json.dumps([{"name": HANGING_MODEL, "provider": "scripted", "script": str(script)}])
    async with in_process_server(server_settings(sqlite_url, models=models)) as (_, stubs):
        yield stubs


async def new_thread(stubs: Stubs) -> str:
    return (await stubs.threads.CreateThread(tpb.CreateThreadRequest())).thread.id


async def add_text(stubs: Stubs, thread_id: str, text: str = "Hello") -> message_pb2.Message:
    response = await stubs.messages.CreateMessage(
        pb.CreateMessageRequest(thread_id=thread_id, role="user", text=text)
    )
    return response.message


def parts(*items: message_pb2.MessageContentPartInput) -> message_pb2.MessageContentParts:
    return message_pb2.MessageContentParts(parts=list(items))


async def test_create_with_text(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    message = await add_text(stubs, thread_id, "What is 2 + 2?")
    assert message.id.startswith("msg_")
    assert message.object == "thread.message"
    assert message.thread_id == thread_id
    assert message.role == "user"
    assert message.status == "completed"
    assert message.completed_at == message.created_at
    assert not message.HasField("incomplete_details")
    assert len(message.content) == 1
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "What is 2 + 2?"
    assert not message.content[0].text.annotations
    assert not message.HasField("run_id")
    assert not message.HasField("assistant_id")


async def test_create_with_parts_attachments_and_metadata(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    message = (
        await stubs.messages.CreateMessage(
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="assistant",
                parts=parts(
                    message_pb2.MessageContentPartInput(type="text", text="Two pictures:"),
                    message_pb2.MessageContentPartInput(
                        image_url=message_pb2.ImageUrl(
                            url="https://example.com/cat.png", detail="low"
                        )
                    ),
                    message_pb2.MessageContentPartInput(
                        image_file=message_pb2.ImageFile(file_id="file-abc")
                    ),
                ),
                attachments=[
                    message_pb2.Attachment(
                        file_id="file-doc",
                        tools=[
                            message_pb2.AttachmentTool(type="code_interpreter"),
                            message_pb2.AttachmentTool(type="file_search"),
                        ],
                    )
                ],
                metadata={"source": "test"},
            )
        )
    ).message
    assert message.role == "assistant"
    assert [c.type for c in message.content] == ["text", "image_url", "image_file"]
    assert message.content[0].text.value == "Two pictures:"
    assert (message.content[1].image_url.url, message.content[1].image_url.detail) == (
        "https://example.com/cat.png",
        "low",
    )
    # OpenAI reports the default detail explicitly.
    assert (message.content[2].image_file.file_id, message.content[2].image_file.detail) == (
        "file-abc",
        "auto",
    )
    assert message.attachments[0].file_id == "file-doc"
    assert [t.type for t in message.attachments[0].tools] == ["code_interpreter", "file_search"]
    assert dict(message.metadata) == {"source": "test"}
    fetched = await stubs.messages.GetMessage(
        pb.GetMessageRequest(thread_id=thread_id, message_id=message.id)
    )
    assert fetched.message == message


async def test_content_is_checked_part_by_part(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    cases: list[tuple[pb.CreateMessageRequest, str]] = [
        (pb.CreateMessageRequest(thread_id=thread_id, role="user"), "content"),
        (pb.CreateMessageRequest(thread_id=thread_id, role="user", text=""), "text"),
        (pb.CreateMessageRequest(thread_id=thread_id, role="system", text="hi"), "role"),
        (pb.CreateMessageRequest(thread_id=thread_id, role="user", parts=parts()), "content"),
        (
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="user",
                parts=parts(
                    message_pb2.MessageContentPartInput(
                        type="image_file", image_url=message_pb2.ImageUrl(url="https://x.test/a")
                    )
                ),
            ),
            "parts.parts[0].type",
        ),
        (
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="user",
                parts=parts(
                    message_pb2.MessageContentPartInput(
                        image_url=message_pb2.ImageUrl(url="ftp://x.test/a.png")
                    )
                ),
            ),
            "parts.parts[0].image_url.url",
        ),
        (
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="user",
                parts=parts(
                    message_pb2.MessageContentPartInput(
                        image_file=message_pb2.ImageFile(file_id="file-1", detail="huge")
                    )
                ),
            ),
            "parts.parts[0].image_file.detail",
        ),
        (
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="user",
                text="hi",
                attachments=[
                    message_pb2.Attachment(
                        file_id="file-1", tools=[message_pb2.AttachmentTool(type="function")]
                    )
                ],
            ),
            "attachments[0].tools[0].type",
        ),
        (
            pb.CreateMessageRequest(
                thread_id=thread_id,
                role="user",
                text="hi",
                attachments=[message_pb2.Attachment(file_id="")],
            ),
            "attachments[0].file_id",
        ),
    ]
    for request, field_path in cases:
        await invalid_field(stubs.messages.CreateMessage(request), field_path)
    listed = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id))
    assert not listed.data


async def test_create_needs_an_existing_thread(stubs: Stubs) -> None:
    await invalid_field(
        stubs.messages.CreateMessage(pb.CreateMessageRequest(role="user", text="hi")),
        "thread_id",
    )
    missing = "thread_" + "A" * 24
    await not_found(
        stubs.messages.CreateMessage(
            pb.CreateMessageRequest(thread_id=missing, role="user", text="hi")
        ),
        missing,
    )


async def test_thread_id_when_given_must_match(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    other_thread_id = await new_thread(stubs)
    message = await add_text(stubs, thread_id)
    # Without thread_id the message is found by its id alone.
    fetched = await stubs.messages.GetMessage(pb.GetMessageRequest(message_id=message.id))
    assert fetched.message == message
    await not_found(
        stubs.messages.GetMessage(
            pb.GetMessageRequest(thread_id=other_thread_id, message_id=message.id)
        ),
        message.id,
    )
    await not_found(
        stubs.messages.UpdateMessage(
            pb.UpdateMessageRequest(
                thread_id=other_thread_id, message_id=message.id, metadata={"a": "b"}
            )
        ),
        message.id,
    )
    await not_found(
        stubs.messages.DeleteMessage(
            pb.DeleteMessageRequest(thread_id=other_thread_id, message_id=message.id)
        ),
        message.id,
    )
    # None of the refused calls changed the message.
    fetched = await stubs.messages.GetMessage(pb.GetMessageRequest(message_id=message.id))
    assert fetched.message == message


async def test_update_replaces_metadata_and_nothing_else(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    message = (
        await stubs.messages.CreateMessage(
            pb.CreateMessageRequest(
                thread_id=thread_id, role="user", text="keep", metadata={"a": "1"}
            )
        )
    ).message
    updated = (
        await stubs.messages.UpdateMessage(
            pb.UpdateMessageRequest(thread_id=thread_id, message_id=message.id, metadata={"b": "2"})
        )
    ).message
    assert dict(updated.metadata) == {"b": "2"}
    assert updated.content == message.content
    assert updated.created_at == message.created_at

    # With nothing to change, the message comes back as it is.
    unchanged = await stubs.messages.UpdateMessage(pb.UpdateMessageRequest(message_id=message.id))
    assert unchanged.message == updated

    cleared = (
        await stubs.messages.UpdateMessage(
            pb.UpdateMessageRequest(
                message_id=message.id, update_mask=field_mask_pb2.FieldMask(paths=["metadata"])
            )
        )
    ).message
    assert not cleared.metadata
    await invalid_field(
        stubs.messages.UpdateMessage(
            pb.UpdateMessageRequest(
                message_id=message.id, update_mask=field_mask_pb2.FieldMask(paths=["content"])
            )
        ),
        "update_mask",
    )
    await invalid_field(
        stubs.messages.UpdateMessage(
            pb.UpdateMessageRequest(message_id=message.id, metadata={"": "empty key"})
        ),
        "metadata",
    )


async def test_delete_removes_only_that_message(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    kept = await add_text(stubs, thread_id, "kept")
    gone = await add_text(stubs, thread_id, "gone")
    deleted = await stubs.messages.DeleteMessage(
        pb.DeleteMessageRequest(thread_id=thread_id, message_id=gone.id)
    )
    assert (deleted.id, deleted.object, deleted.deleted) == (
        gone.id,
        "thread.message.deleted",
        True,
    )
    await not_found(stubs.messages.GetMessage(pb.GetMessageRequest(message_id=gone.id)), gone.id)
    await not_found(
        stubs.messages.DeleteMessage(pb.DeleteMessageRequest(message_id=gone.id)), gone.id
    )
    listed = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id))
    assert [m.id for m in listed.data] == [kept.id]


async def test_list_filters_by_run(stubs: Stubs) -> None:
    assistant = (
        await stubs.assistants.CreateAssistant(apb.CreateAssistantRequest(model="scripted-echo"))
    ).assistant
    thread_id = await new_thread(stubs)
    question = await add_text(stubs, thread_id, "ping")
    run = (
        await stubs.runs.RunThread(
            rpb.RunThreadRequest(thread_id=thread_id, assistant_id=assistant.id), timeout=20
        )
    ).run
    assert run.status == "completed"

    everything = await stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id))
    assert len(everything.data) == 2
    assert everything.data[1].id == question.id

    by_run = await stubs.messages.ListMessages(
        pb.ListMessagesRequest(thread_id=thread_id, run_id=run.id)
    )
    assert len(by_run.data) == 1
    answer = by_run.data[0]
    assert (answer.role, answer.run_id, answer.assistant_id) == ("assistant", run.id, assistant.id)
    assert "ping" in answer.content[0].text.value

    other_run = "run_" + "B" * 24
    none = await stubs.messages.ListMessages(
        pb.ListMessagesRequest(thread_id=thread_id, run_id=other_run)
    )
    assert not none.data
    await invalid_field(
        stubs.messages.ListMessages(pb.ListMessagesRequest(thread_id=thread_id, run_id="msg_1")),
        "run_id",
    )


async def test_messages_cannot_be_added_while_a_run_is_active(
    hanging_model_stubs: Stubs,
) -> None:
    """OpenAI refuses new messages (and deleting the thread) while a run is active."""
    stubs = hanging_model_stubs
    assistant = (
        await stubs.assistants.CreateAssistant(apb.CreateAssistantRequest(model=HANGING_MODEL))
    ).assistant
    thread_id = await new_thread(stubs)
    await add_text(stubs, thread_id)
    run = (
        await stubs.runs.CreateRun(
            rpb.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id)
        )
    ).run
    refusal = await rpc_error(add_text(stubs, thread_id, "too early"))
    assert refusal.code == grpc.StatusCode.FAILED_PRECONDITION
    assert refusal.reason == "THREAD_HAS_ACTIVE_RUN"
    assert run.id in refusal.message
    refusal = await rpc_error(
        stubs.threads.DeleteThread(tpb.DeleteThreadRequest(thread_id=thread_id))
    )
    assert refusal.code == grpc.StatusCode.FAILED_PRECONDITION

    await stubs.runs.CancelRun(rpb.CancelRunRequest(run_id=run.id))
    async for event in stubs.runs.SubscribeRun(rpb.SubscribeRunRequest(run_id=run.id), timeout=20):
        if event.event == "done":
            break
    ended = await stubs.runs.GetRun(rpb.GetRunRequest(run_id=run.id))
    assert ended.run.status == "cancelled"
    await add_text(stubs, thread_id, "now it is fine")
