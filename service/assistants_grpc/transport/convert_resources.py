"""Conversion of assistants, threads and messages between proto and domain."""

from __future__ import annotations

from typing import Any

from assistants.v1 import assistant_pb2, message_pb2, thread_pb2
from assistants_grpc.domain.models import (
    Annotation,
    Assistant,
    Attachment,
    ContentPart,
    ImageFile,
    ImageUrl,
    Message,
    NewMessage,
    Thread,
)
from assistants_grpc.domain.validation import Violations
from assistants_grpc.transport.convert_common import (
    optional_float,
    optional_str,
    response_format_from_proto,
    response_format_to_proto,
    tool_resources_from_proto,
    tool_resources_to_proto,
    tool_to_proto,
    tools_from_proto,
    variant_type,
)

# --- assistants ---------------------------------------------------------------------------


def assistant_fields(v: Violations, request: Any, present: set[str]) -> dict[str, Any]:
    """Assistant attributes from a create or update request, for the fields in `present`.

    `present` holds proto field names; conversion and attribute names are the same here.
    """
    fields: dict[str, Any] = {}
    if "model" in present:
        fields["model"] = request.model
    for name in ("name", "description", "instructions", "reasoning_effort"):
        if name in present:
            fields[name] = optional_str(request, name)
    for name in ("temperature", "top_p"):
        if name in present:
            fields[name] = optional_float(request, name)
    if "tools" in present:
        fields["tools"] = tools_from_proto(v, "tools", request.tools)
    if "tool_resources" in present:
        fields["tool_resources"] = (
            tool_resources_from_proto(request.tool_resources)
            if request.HasField("tool_resources")
            else None
        )
    if "metadata" in present:
        fields["metadata"] = dict(request.metadata)
    if "response_format" in present:
        fields["response_format"] = (
            response_format_from_proto(v, "response_format", request.response_format)
            if request.HasField("response_format")
            else None
        )
    return fields


def assistant_to_proto(a: Assistant) -> assistant_pb2.Assistant:
    return assistant_pb2.Assistant(
        id=a.id,
        object="assistant",
        created_at=a.created_at,
        name=a.name,
        description=a.description,
        model=a.model,
        instructions=a.instructions,
        tools=[tool_to_proto(t) for t in a.tools],
        tool_resources=tool_resources_to_proto(a.tool_resources),
        metadata=a.metadata,
        temperature=a.temperature,
        top_p=a.top_p,
        response_format=response_format_to_proto(a.response_format),
        reasoning_effort=a.reasoning_effort,
    )


def thread_to_proto(t: Thread) -> thread_pb2.Thread:
    return thread_pb2.Thread(
        id=t.id,
        object="thread",
        created_at=t.created_at,
        tool_resources=tool_resources_to_proto(t.tool_resources),
        metadata=t.metadata,
    )


# --- message content ----------------------------------------------------------------------

PART_TYPES = ("text", "image_file", "image_url")


def _image_file(image: message_pb2.ImageFile) -> ImageFile:
    return ImageFile(file_id=image.file_id, detail=image.detail or None)


def _image_url(image: message_pb2.ImageUrl) -> ImageUrl:
    return ImageUrl(url=image.url, detail=image.detail or None)


def content_from_proto(v: Violations, field_prefix: str, request: Any) -> list[ContentPart]:
    """Content from a message request's `text`/`parts` oneof."""
    which = request.WhichOneof("content")
    if which == "text":
        return [ContentPart(type="text", text=request.text)]
    if which != "parts":
        return []
    parts: list[ContentPart] = []
    for i, part in enumerate(request.parts.parts):
        path = f"{field_prefix}parts.parts[{i}]"
        kind = variant_type(v, path, part.type, part.WhichOneof("part"), PART_TYPES)
        if kind == "text":
            parts.append(ContentPart(type="text", text=part.text))
        elif kind == "image_file":
            parts.append(ContentPart(type=kind, image_file=_image_file(part.image_file)))
        elif kind == "image_url":
            parts.append(ContentPart(type=kind, image_url=_image_url(part.image_url)))
    return parts


def new_message_from_proto(v: Violations, field_prefix: str, request: Any) -> NewMessage:
    """A NewMessage from a CreateMessageRequest or a MessageInput."""
    return NewMessage(
        role=request.role,
        content=content_from_proto(v, field_prefix, request),
        attachments=[
            Attachment(file_id=a.file_id, tools=[t.type for t in a.tools])
            for a in request.attachments
        ],
        metadata=dict(request.metadata),
    )


def new_messages_from_proto(v: Violations, field: str, inputs: Any) -> list[NewMessage]:
    return [new_message_from_proto(v, f"{field}[{i}].", m) for i, m in enumerate(inputs)]


def _annotation_to_proto(a: Annotation) -> message_pb2.TextAnnotation:
    if a.type == "file_path":
        return message_pb2.TextAnnotation(
            type=a.type,
            text=a.text,
            start_index=a.start_index,
            end_index=a.end_index,
            file_path=message_pb2.FilePath(file_id=a.file_id),
        )
    return message_pb2.TextAnnotation(
        type=a.type,
        text=a.text,
        start_index=a.start_index,
        end_index=a.end_index,
        file_citation=message_pb2.FileCitation(file_id=a.file_id),
    )


def _content_part_to_proto(part: ContentPart) -> message_pb2.MessageContent:
    if part.type == "text":
        return message_pb2.MessageContent(
            type="text",
            text=message_pb2.TextContent(
                value=part.text or "",
                annotations=[_annotation_to_proto(a) for a in part.annotations],
            ),
        )
    if part.type == "image_file" and part.image_file is not None:
        return message_pb2.MessageContent(
            type="image_file",
            image_file=message_pb2.ImageFile(
                file_id=part.image_file.file_id, detail=part.image_file.detail or "auto"
            ),
        )
    if part.type == "image_url" and part.image_url is not None:
        return message_pb2.MessageContent(
            type="image_url",
            image_url=message_pb2.ImageUrl(
                url=part.image_url.url, detail=part.image_url.detail or "auto"
            ),
        )
    return message_pb2.MessageContent(type="refusal", refusal=part.refusal or "")


def message_to_proto(m: Message) -> message_pb2.Message:
    return message_pb2.Message(
        id=m.id,
        object="thread.message",
        created_at=m.created_at,
        thread_id=m.thread_id,
        status=m.status,
        incomplete_details=message_pb2.MessageIncompleteDetails(reason=m.incomplete_reason)
        if m.incomplete_reason
        else None,
        completed_at=m.completed_at,
        incomplete_at=m.incomplete_at,
        role=m.role,
        content=[_content_part_to_proto(p) for p in m.content],
        assistant_id=m.assistant_id,
        run_id=m.run_id,
        attachments=[
            message_pb2.Attachment(
                file_id=a.file_id, tools=[message_pb2.AttachmentTool(type=t) for t in a.tools]
            )
            for a in m.attachments
        ],
        metadata=m.metadata,
    )
