"""ThreadService through the generated stubs: threads with their first messages, metadata and
tool resources; update and delete (which takes the messages with it)."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from assistants.v1 import common_pb2, message_pb2
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import thread_service_pb2 as pb

from ..support.stubs import Stubs
from .rich_errors import invalid_field, not_found


def resources(*file_ids: str) -> common_pb2.ToolResources:
    return common_pb2.ToolResources(
        code_interpreter=common_pb2.CodeInterpreterResources(file_ids=list(file_ids))
    )


async def test_create_an_empty_thread(stubs: Stubs) -> None:
    thread = (await stubs.threads.CreateThread(pb.CreateThreadRequest())).thread
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert thread.created_at > 0
    assert not thread.HasField("tool_resources")
    assert not thread.metadata
    messages = await stubs.messages.ListMessages(mpb.ListMessagesRequest(thread_id=thread.id))
    assert not messages.data


async def test_create_with_initial_messages_metadata_and_tool_resources(stubs: Stubs) -> None:
    thread = (
        await stubs.threads.CreateThread(
            pb.CreateThreadRequest(
                messages=[
                    message_pb2.MessageInput(role="user", text="First", metadata={"n": "1"}),
                    message_pb2.MessageInput(role="assistant", text="Second"),
                    message_pb2.MessageInput(
                        role="user",
                        parts=message_pb2.MessageContentParts(
                            parts=[
                                message_pb2.MessageContentPartInput(text="Look:"),
                                message_pb2.MessageContentPartInput(
                                    image_url=message_pb2.ImageUrl(url="https://example.com/a.png")
                                ),
                            ]
                        ),
                        attachments=[
                            message_pb2.Attachment(
                                file_id="file-9",
                                tools=[message_pb2.AttachmentTool(type="file_search")],
                            )
                        ],
                    ),
                ],
                tool_resources=resources("file-1", "file-2"),
                metadata={"customer": "c-42"},
            )
        )
    ).thread
    assert dict(thread.metadata) == {"customer": "c-42"}
    assert list(thread.tool_resources.code_interpreter.file_ids) == ["file-1", "file-2"]

    listed = await stubs.messages.ListMessages(
        mpb.ListMessagesRequest(thread_id=thread.id, order="asc")
    )
    first, second, third = listed.data
    assert [m.role for m in listed.data] == ["user", "assistant", "user"]
    assert first.content[0].text.value == "First"
    assert dict(first.metadata) == {"n": "1"}
    assert second.content[0].text.value == "Second"
    assert [c.type for c in third.content] == ["text", "image_url"]
    assert third.content[1].image_url.url == "https://example.com/a.png"
    assert third.attachments[0].file_id == "file-9"
    assert third.attachments[0].tools[0].type == "file_search"
    for message in listed.data:
        assert message.thread_id == thread.id
        assert message.status == "completed"
        assert message.created_at == thread.created_at
        assert not message.HasField("run_id")
        assert not message.HasField("assistant_id")


async def test_create_checks_every_initial_message(stubs: Stubs) -> None:
    error = await invalid_field(
        stubs.threads.CreateThread(
            pb.CreateThreadRequest(
                messages=[
                    message_pb2.MessageInput(role="user", text="fine"),
                    message_pb2.MessageInput(role="system", text="bad role"),
                    message_pb2.MessageInput(role="user"),
                ]
            )
        ),
        "messages[1].role",
    )
    assert "messages[2].content" in error.violations
    too_many = [message_pb2.MessageInput(role="user", text="m")] * 33
    await invalid_field(
        stubs.threads.CreateThread(pb.CreateThreadRequest(messages=too_many)), "messages"
    )


async def test_get_returns_the_stored_thread(stubs: Stubs) -> None:
    created = (await stubs.threads.CreateThread(pb.CreateThreadRequest(metadata={"a": "b"}))).thread
    fetched = await stubs.threads.GetThread(pb.GetThreadRequest(thread_id=created.id))
    assert fetched.thread == created


async def test_update_replaces_metadata_and_keeps_tool_resources(stubs: Stubs) -> None:
    thread = (
        await stubs.threads.CreateThread(
            pb.CreateThreadRequest(metadata={"a": "1"}, tool_resources=resources("file-1"))
        )
    ).thread
    updated = (
        await stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(thread_id=thread.id, metadata={"b": "2"})
        )
    ).thread
    assert dict(updated.metadata) == {"b": "2"}
    assert updated.tool_resources == thread.tool_resources
    fetched = await stubs.threads.GetThread(pb.GetThreadRequest(thread_id=thread.id))
    assert fetched.thread == updated


async def test_update_with_a_mask_clears_tool_resources(stubs: Stubs) -> None:
    thread = (
        await stubs.threads.CreateThread(
            pb.CreateThreadRequest(metadata={"a": "1"}, tool_resources=resources("file-1"))
        )
    ).thread
    updated = (
        await stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(
                thread_id=thread.id, update_mask=field_mask_pb2.FieldMask(paths=["tool_resources"])
            )
        )
    ).thread
    assert not updated.HasField("tool_resources")
    assert dict(updated.metadata) == {"a": "1"}


async def test_update_checks_its_input(stubs: Stubs) -> None:
    thread = (await stubs.threads.CreateThread(pb.CreateThreadRequest())).thread
    await invalid_field(
        stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(thread_id=thread.id, metadata={"k": "v" * 513})
        ),
        "metadata[k]",
    )
    await invalid_field(
        stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(
                thread_id=thread.id, update_mask=field_mask_pb2.FieldMask(paths=["messages"])
            )
        ),
        "update_mask",
    )
    await invalid_field(
        stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(
                thread_id=thread.id,
                tool_resources=resources(*[f"file-{i}" for i in range(21)]),
            )
        ),
        "tool_resources.code_interpreter.file_ids",
    )


async def test_delete_removes_the_thread_and_its_messages(stubs: Stubs) -> None:
    thread = (
        await stubs.threads.CreateThread(
            pb.CreateThreadRequest(messages=[message_pb2.MessageInput(role="user", text="hi")])
        )
    ).thread
    listed = await stubs.messages.ListMessages(mpb.ListMessagesRequest(thread_id=thread.id))
    message_id = listed.data[0].id

    deleted = await stubs.threads.DeleteThread(pb.DeleteThreadRequest(thread_id=thread.id))
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)

    await not_found(stubs.threads.GetThread(pb.GetThreadRequest(thread_id=thread.id)), thread.id)
    await not_found(
        stubs.messages.ListMessages(mpb.ListMessagesRequest(thread_id=thread.id)), thread.id
    )
    await not_found(
        stubs.messages.GetMessage(mpb.GetMessageRequest(message_id=message_id)), message_id
    )
    await not_found(
        stubs.threads.DeleteThread(pb.DeleteThreadRequest(thread_id=thread.id)), thread.id
    )
    await not_found(
        stubs.threads.UpdateThread(
            pb.UpdateThreadRequest(thread_id=thread.id, metadata={"a": "b"})
        ),
        thread.id,
    )
