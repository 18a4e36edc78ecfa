"""The keyword arguments of the client methods, in OpenAI's shapes.

Wherever a method takes a tool, a message, a response format and so on, it takes either the
OpenAI-style dict (as the OpenAI SDK or LiteLLM would be given it) or the generated protobuf
message itself. Fields left out keep the server's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, Required, TypedDict

from assistants.v1 import (
    common_pb2,
    message_pb2,
    run_service_pb2,
)

from .calls import CallOptions

Order = Literal["asc", "desc"]
Role = Literal["user", "assistant"]

ToolParam = common_pb2.Tool | Mapping[str, Any]
"""`{"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}`,
`{"type": "code_interpreter"}`, `{"type": "file_search"}`, or a `Tool`."""

ToolResourcesParam = common_pb2.ToolResources | Mapping[str, Any]
"""`{"code_interpreter": {"file_ids": [...]}, "file_search": {"vector_store_ids": [...]}}`."""

ResponseFormatParam = common_pb2.ResponseFormat | str | Mapping[str, Any]
"""`"auto"`, `{"type": "text"}`, `{"type": "json_object"}` or
`{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`."""

ToolChoiceParam = common_pb2.ToolChoice | str | Mapping[str, Any]
"""`"none"`, `"auto"`, `"required"` or `{"type": "function", "function": {"name": ...}}`."""

TruncationStrategyParam = common_pb2.TruncationStrategy | Mapping[str, Any]
"""`{"type": "auto"}` or `{"type": "last_messages", "last_messages": 10}`."""


class TextPartParam(TypedDict):
    type: Literal["text"]
    text: str


class ImageUrlParam(TypedDict):
    url: str
    detail: NotRequired[Literal["auto", "low", "high"]]


class ImageUrlPartParam(TypedDict):
    type: Literal["image_url"]
    image_url: ImageUrlParam


class ImageFileParam(TypedDict):
    file_id: str
    detail: NotRequired[Literal["auto", "low", "high"]]


class ImageFilePartParam(TypedDict):
    type: Literal["image_file"]
    image_file: ImageFileParam


ContentPartParam = (
    TextPartParam | ImageUrlPartParam | ImageFilePartParam | message_pb2.MessageContentPartInput
)
MessageContentParam = str | Sequence[ContentPartParam]
"""A message's content: one text, or a list of parts."""


class AttachmentToolParam(TypedDict):
    type: Literal["code_interpreter", "file_search"]


class AttachmentParam(TypedDict):
    file_id: str
    tools: NotRequired[Sequence[AttachmentToolParam]]


class MessageParam(TypedDict):
    """A message to put on a thread: `{"role": "user", "content": "Hello"}`."""

    role: Role
    content: MessageContentParam
    attachments: NotRequired[Sequence[AttachmentParam | message_pb2.Attachment]]
    metadata: NotRequired[Mapping[str, str]]


MessageInputParam = MessageParam | message_pb2.MessageInput


class ThreadParam(TypedDict, total=False):
    """A thread to create with a run: `{"messages": [{"role": "user", "content": "Hi"}]}`."""

    messages: Sequence[MessageInputParam]
    tool_resources: ToolResourcesParam
    metadata: Mapping[str, str]


class ToolOutputParam(TypedDict):
    """The output of a tool call: `{"tool_call_id": "call_...", "output": "..."}`."""

    tool_call_id: str
    output: str


ToolOutputInput = ToolOutputParam | run_service_pb2.ToolOutput


# --- method arguments ---------------------------------------------------------------------------


class AssistantFields(CallOptions, total=False):
    name: str | None
    description: str | None
    instructions: str | None
    tools: Sequence[ToolParam] | None
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None
    temperature: float | None
    top_p: float | None
    response_format: ResponseFormatParam | None
    reasoning_effort: str | None


class CreateAssistantParams(AssistantFields, total=False):
    model: Required[str]


class UpdateAssistantParams(AssistantFields, total=False):
    model: str


class PageParams(CallOptions, total=False):
    """One page of a list: `limit` (1 to 100, default 20), `order` (default `desc`), and the
    cursors `after` and `before` (ids)."""

    limit: int
    order: Order
    after: str
    before: str


class IterParams(CallOptions, total=False):
    """Every item of a list, fetched `page_size` at a time (default 100), in `order` (default
    `desc`), starting after the id `after` when given."""

    order: Order
    after: str
    page_size: int


class MessagePageParams(PageParams, total=False):
    run_id: str


class IterMessagesParams(IterParams, total=False):
    run_id: str


class CreateThreadParams(CallOptions, total=False):
    messages: Sequence[MessageInputParam]
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None


class UpdateThreadParams(CallOptions, total=False):
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None


class AddMessageParams(CallOptions, total=False):
    role: Required[Role]
    content: Required[MessageContentParam]
    attachments: Sequence[AttachmentParam | message_pb2.Attachment]
    metadata: Mapping[str, str] | None


class UpdateMetadataParams(CallOptions, total=False):
    metadata: Mapping[str, str] | None


class RunOptions(CallOptions, total=False):
    """Overrides of the assistant's settings for one run."""

    model: str | None
    instructions: str | None
    tools: Sequence[ToolParam] | None
    metadata: Mapping[str, str] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: TruncationStrategyParam | None
    tool_choice: ToolChoiceParam | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormatParam | None
    reasoning_effort: str | None


class RunParams(RunOptions, total=False):
    assistant_id: Required[str]
    additional_instructions: str | None
    additional_messages: Sequence[MessageInputParam] | None


class ThreadAndRunParams(RunOptions, total=False):
    assistant_id: Required[str]
    thread: ThreadParam | None
    tool_resources: ToolResourcesParam | None


class ToolOutputsParams(CallOptions, total=False):
    tool_outputs: Required[Sequence[ToolOutputInput]]


class SubscribeParams(CallOptions, total=False):
    after_sequence_number: int
