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


def compact(**fields: Any) -> dict[str, Any]:
    """Proto constructor arguments without the unset (None) ones.

    Building messages from plain keyword arguments, with nested messages given as dicts and
    unset fields left out, is several times cheaper than nesting constructed messages (each of
    which the outer constructor copies); lists of objects are the hot path of every list call
    and every streamed event.
    """
    return {name: value for name, value in fields.items() if value is not None}


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


def assistant_proto_fields(a: Assistant) -> dict[str, Any]:
    fields = compact(
        id=a.id,
        object="assistant",
        created_at=a.created_at,
        name=a.name,
        description=a.description,
        model=a.model,
        instructions=a.instructions,
        tool_resources=tool_resources_to_proto(a.tool_resources),
        temperature=a.temperature,
        top_p=a.top_p,
        response_format=response_format_to_proto(a.response_format),
        reasoning_effort=a.reasoning_effort,
    )
    if a.tools:
        fields["tools"] = [tool_to_proto(t) for t in a.tools]
    if a.metadata:
        fields["metadata"] = a.metadata
    return fields


def assistant_to_proto(a: Assistant) -> assistant_pb2.Assistant:
    return assistant_pb2.Assistant(**assistant_proto_fields(a))


def thread_proto_fields(t: Thread) -> dict[str, Any]:
    fields = compact(
        id=t.id,
        object="thread",
        created_at=t.created_at,
        tool_resources=tool_resources_to_proto(t.tool_resources),
    )
    if t.metadata:
        fields["metadata"] = t.metadata
    return fields


def thread_to_proto(t: Thread) -> thread_pb2.Thread:
    return thread_pb2.Thread(**thread_proto_fields(t))


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
        given_as_parts=request.WhichOneof("content") == "parts",
    )


def new_messages_from_proto(v: Violations, field: str, inputs: Any) -> list[NewMessage]:
    return [new_message_from_proto(v, f"{field}[{i}].", m) for i, m in enumerate(inputs)]


def _annotation_fields(a: Annotation) -> dict[str, Any]:
    target = "file_path" if a.type == "file_path" else "file_citation"
    return {
        "type": a.type,
        "text": a.text,
        "start_index": a.start_index,
        "end_index": a.end_index,
        target: {"file_id": a.file_id},
    }


def _content_part_fields(part: ContentPart) -> dict[str, Any]:
    if part.type == "text":
        text: dict[str, Any] = {"value": part.text or ""}
        if part.annotations:
            text["annotations"] = [_annotation_fields(a) for a in part.annotations]
        return {"type": "text", "text": text}
    if part.type == "image_file" and part.image_file is not None:
        image = part.image_file
        return {
            "type": "image_file",
            "image_file": {"file_id": image.file_id, "detail": image.detail or "auto"},
        }
    if part.type == "image_url" and part.image_url is not None:
        url = part.image_url
        return {"type": "image_url", "image_url": {"url": url.url, "detail": url.detail or "auto"}}
    return {"type": "refusal", "refusal": part.refusal or ""}


def message_proto_fields(m: Message) -> dict[str, Any]:
    # Written out rather than through `compact`: this runs for every message of every list
    # page and message event, and the literal is more than twice as fast.
    fields: dict[str, Any] = {
        "id": m.id,
        "object": "thread.message",
        "created_at": m.created_at,
        "thread_id": m.thread_id,
        "status": m.status,
        "role": m.role,
    }
    if m.completed_at is not None:
        fields["completed_at"] = m.completed_at
    if m.incomplete_at is not None:
        fields["incomplete_at"] = m.incomplete_at
    if m.assistant_id is not None:
        fields["assistant_id"] = m.assistant_id
    if m.run_id is not None:
        fields["run_id"] = m.run_id
    if m.incomplete_reason:
        fields["incomplete_details"] = {"reason": m.incomplete_reason}
    if m.content:
        fields["content"] = [_content_part_fields(p) for p in m.content]
    if m.attachments:
        fields["attachments"] = [
            {"file_id": a.file_id, "tools": [{"type": t} for t in a.tools]} for a in m.attachments
        ]
    if m.metadata:
        fields["metadata"] = m.metadata
    return fields


def message_to_proto(m: Message) -> message_pb2.Message:
    return message_pb2.Message(**message_proto_fields(m))
