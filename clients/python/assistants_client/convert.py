"""OpenAI-style values (dicts and strings) to the generated protobuf messages.

The protos follow OpenAI's field names, so a dict converts field by field with protobuf's own
JSON mapping (`json_format.ParseDict`); only OpenAI's unions written as strings (`"auto"`), and
message content given as a plain string or a list of parts, need a word of their own. A value that
is already the protobuf message passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from assistants.v1 import common_pb2, message_pb2, run_service_pb2, thread_pb2

from .params import (
    AttachmentParam,
    ContentPartParam,
    MessageContentParam,
    MessageInputParam,
    ResponseFormatParam,
    ThreadParam,
    ToolChoiceParam,
    ToolOutputInput,
    ToolParam,
    ToolResourcesParam,
    TruncationStrategyParam,
)

P = TypeVar("P", bound=ProtoMessage)


def parse(value: P | Mapping[str, Any], message_type: type[P], where: str) -> P:
    """`value` as a `message_type`: the message itself, or a dict of its fields.

    Raises ValueError naming `where` for unknown fields and values of the wrong type, so that a
    typo fails here rather than being dropped.
    """
    if isinstance(value, message_type):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{where}: expected a dict or {message_type.__name__}, not {type(value).__name__}"
        )
    try:
        return json_format.ParseDict(dict(value), message_type())
    except json_format.ParseError as error:
        raise ValueError(f"{where}: {error}") from None


def tool(value: ToolParam, where: str = "tool") -> common_pb2.Tool:
    return parse(value, common_pb2.Tool, where)


def tools(values: Sequence[ToolParam], where: str = "tools") -> list[common_pb2.Tool]:
    return [tool(value, f"{where}[{index}]") for index, value in enumerate(values)]


def tool_resources(value: ToolResourcesParam) -> common_pb2.ToolResources:
    return parse(value, common_pb2.ToolResources, "tool_resources")


def response_format(value: ResponseFormatParam) -> common_pb2.ResponseFormat:
    if isinstance(value, str):
        # OpenAI's string form, "auto"; the other formats are objects with a `type`.
        return common_pb2.ResponseFormat(type=value)
    return parse(value, common_pb2.ResponseFormat, "response_format")


def tool_choice(value: ToolChoiceParam) -> common_pb2.ToolChoice:
    if isinstance(value, common_pb2.ToolChoice):
        return value
    if isinstance(value, str):
        return common_pb2.ToolChoice(mode=value)
    return common_pb2.ToolChoice(
        tool=parse(value, common_pb2.NamedToolChoice, "tool_choice"),
    )


def truncation_strategy(value: TruncationStrategyParam) -> common_pb2.TruncationStrategy:
    return parse(value, common_pb2.TruncationStrategy, "truncation_strategy")


def content_part(
    value: ContentPartParam, where: str = "content"
) -> message_pb2.MessageContentPartInput:
    return parse(value, message_pb2.MessageContentPartInput, where)


def content_fields(value: MessageContentParam, where: str = "content") -> dict[str, Any]:
    """The `content` oneof of a message: `text` for a string, `parts` for a list of parts."""
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, message_pb2.MessageContentParts):
        return {"parts": value}
    parts = [content_part(part, f"{where}[{index}]") for index, part in enumerate(value)]
    return {"parts": message_pb2.MessageContentParts(parts=parts)}


def attachments(
    values: Sequence[AttachmentParam | message_pb2.Attachment], where: str = "attachments"
) -> list[message_pb2.Attachment]:
    return [
        parse(value, message_pb2.Attachment, f"{where}[{index}]")
        for index, value in enumerate(values)
    ]


def message_input(value: MessageInputParam, where: str = "message") -> message_pb2.MessageInput:
    """A message to start a thread with or to add before a run."""
    if isinstance(value, message_pb2.MessageInput):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a dict or MessageInput, not {type(value).__name__}")
    unknown = set(value) - {"role", "content", "attachments", "metadata"}
    if unknown:
        raise ValueError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    if "role" not in value or "content" not in value:
        raise ValueError(f"{where}: `role` and `content` are required")
    fields: dict[str, Any] = {"role": value["role"]}
    fields.update(content_fields(value["content"], f"{where}.content"))
    if "attachments" in value:
        fields["attachments"] = attachments(value["attachments"], f"{where}.attachments")
    if "metadata" in value:
        fields["metadata"] = dict(value["metadata"])
    return message_pb2.MessageInput(**fields)


def message_inputs(
    values: Sequence[MessageInputParam], where: str = "messages"
) -> list[message_pb2.MessageInput]:
    return [message_input(value, f"{where}[{index}]") for index, value in enumerate(values)]


def thread_input(value: ThreadParam | thread_pb2.ThreadInput) -> thread_pb2.ThreadInput:
    if isinstance(value, thread_pb2.ThreadInput):
        return value
    unknown = set(value) - {"messages", "tool_resources", "metadata"}
    if unknown:
        raise ValueError(f"thread: unknown fields {', '.join(sorted(unknown))}")
    result = thread_pb2.ThreadInput()
    if "messages" in value:
        result.messages.extend(message_inputs(value["messages"], "thread.messages"))
    if "tool_resources" in value:
        result.tool_resources.CopyFrom(tool_resources(value["tool_resources"]))
    if "metadata" in value:
        result.metadata.update(value["metadata"])
    return result


def tool_outputs(values: Sequence[ToolOutputInput]) -> list[run_service_pb2.ToolOutput]:
    return [
        parse(value, run_service_pb2.ToolOutput, f"tool_outputs[{index}]")
        for index, value in enumerate(values)
    ]
