"""The objects of the Assistants API, in OpenAI's vocabulary, with no I/O.

They are msgspec structs because storage keeps each object as one JSON document and msgspec
encodes and decodes them an order of magnitude faster than dataclasses with a JSON library;
the hot path (a streamed run) stores and reloads them many times.
"""

from __future__ import annotations

from typing import Any

import msgspec

Metadata = dict[str, str]
JsonObject = dict[str, Any]


class Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every domain object: keyword-only, and defaults left out of stored JSON."""


# --- shared pieces ------------------------------------------------------------------------


class FunctionDefinition(Struct):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class RankingOptions(Struct):
    ranker: str | None = None
    score_threshold: float = 0.0


class FileSearchOptions(Struct):
    max_num_results: int | None = None
    ranking_options: RankingOptions | None = None


class Tool(Struct):
    type: str
    """`code_interpreter`, `file_search` or `function`."""
    function: FunctionDefinition | None = None
    file_search: FileSearchOptions | None = None


class ToolResources(Struct):
    code_interpreter_file_ids: list[str] | None = None
    file_search_vector_store_ids: list[str] | None = None


class JsonSchemaFormat(Struct):
    name: str
    description: str | None = None
    schema: JsonObject | None = None
    strict: bool | None = None


class ResponseFormat(Struct):
    type: str
    """`auto`, `text`, `json_object` or `json_schema`."""
    json_schema: JsonSchemaFormat | None = None


class ToolChoice(Struct):
    type: str
    """`none`, `auto`, `required` (modes), or `function`, `code_interpreter`, `file_search`."""
    function_name: str | None = None

    @property
    def is_mode(self) -> bool:
        return self.type in ("none", "auto", "required")


class TruncationStrategy(Struct):
    type: str = "auto"
    last_messages: int | None = None


class Usage(Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


# --- assistants and threads ---------------------------------------------------------------


class Assistant(Struct):
    id: str
    project_id: str
    created_at: int
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[Tool] = msgspec.field(default_factory=list)
    tool_resources: ToolResources | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None


class Thread(Struct):
    id: str
    project_id: str
    created_at: int
    tool_resources: ToolResources | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


# --- messages -----------------------------------------------------------------------------


class ImageFile(Struct):
    file_id: str
    detail: str | None = None


class ImageUrl(Struct):
    url: str
    detail: str | None = None


class Annotation(Struct):
    type: str
    """`file_citation` or `file_path`."""
    text: str
    start_index: int
    end_index: int
    file_id: str


class ContentPart(Struct):
    type: str
    """`text`, `image_file`, `image_url` or `refusal`."""
    text: str | None = None
    annotations: list[Annotation] = msgspec.field(default_factory=list)
    image_file: ImageFile | None = None
    image_url: ImageUrl | None = None
    refusal: str | None = None


class Attachment(Struct):
    file_id: str
    tools: list[str] = msgspec.field(default_factory=list)
    """Tool types: `code_interpreter`, `file_search`."""


class MessageStatus:
    IN_PROGRESS = "in_progress"
    INCOMPLETE = "incomplete"
    COMPLETED = "completed"


class Message(Struct):
    id: str
    project_id: str
    thread_id: str
    created_at: int
    role: str
    content: list[ContentPart] = msgspec.field(default_factory=list)
    status: str = MessageStatus.COMPLETED
    incomplete_reason: str | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[Attachment] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)

    def text(self) -> str:
        """The message's text parts joined, as a model sees them."""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class NewMessage(Struct):
    """A message a caller asks to add (CreateMessage, a new thread, `additional_messages`)."""

    role: str
    content: list[ContentPart]
    attachments: list[Attachment] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)
    given_as_parts: bool = False
    """The content came as a list of parts rather than as plain text: errors name the parts."""


# --- runs ---------------------------------------------------------------------------------


class RunStatus:
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"

    ACTIVE = frozenset({QUEUED, IN_PROGRESS, REQUIRES_ACTION, CANCELLING})
    TERMINAL = frozenset({CANCELLED, FAILED, COMPLETED, INCOMPLETE, EXPIRED})


class RunError(Struct):
    code: str
    """`server_error`, `rate_limit_exceeded` or `invalid_prompt`."""
    message: str


class FunctionCall(Struct):
    id: str
    name: str
    arguments: str


class Run(Struct):
    id: str
    project_id: str
    thread_id: str
    assistant_id: str
    created_at: int
    status: str
    model: str
    instructions: str = ""
    tools: list[Tool] = msgspec.field(default_factory=list)
    tool_resources: ToolResources | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationStrategy = msgspec.field(default_factory=TruncationStrategy)
    tool_choice: ToolChoice = msgspec.field(default_factory=lambda: ToolChoice(type="auto"))
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    required_tool_calls: list[FunctionCall] | None = None
    """The calls waiting for outputs while `requires_action`."""
    last_error: RunError | None = None
    expires_at: int | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_reason: str | None = None
    usage: Usage | None = None
    """Usage so far; shown to callers only once the run has ended, as OpenAI does."""
    deadline_at: float | None = None
    """Unix time after which no model call of the current execution may go on: the deadline
    of the call that started (or resumed) the run and waits for it. Not shown to callers."""
    execution_attempt: int | None = None
    """The claim attempt that took the run from `queued` to `in_progress`; later claims of the
    same execution are resumptions after its worker stopped. Not shown to callers."""

    @property
    def is_active(self) -> bool:
        return self.status in RunStatus.ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in RunStatus.TERMINAL


class StepStatus:
    IN_PROGRESS = "in_progress"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    EXPIRED = "expired"


class ToolCallRecord(Struct):
    id: str
    name: str
    arguments: str
    output: str | None = None
    type: str = "function"


class RunStep(Struct):
    id: str
    project_id: str
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: int
    type: str
    """`message_creation` or `tool_calls`."""
    status: str = StepStatus.IN_PROGRESS
    message_id: str | None = None
    tool_calls: list[ToolCallRecord] = msgspec.field(default_factory=list)
    last_error: RunError | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    usage: Usage | None = None


# --- stream payloads ----------------------------------------------------------------------


class ContentDelta(Struct):
    index: int
    type: str = "text"
    text: str | None = None


class MessageDelta(Struct):
    id: str
    content: list[ContentDelta] = msgspec.field(default_factory=list)
    role: str | None = None


class ToolCallDelta(Struct):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    type: str = "function"


class RunStepDelta(Struct):
    id: str
    step_type: str
    message_id: str | None = None
    tool_calls: list[ToolCallDelta] = msgspec.field(default_factory=list)


class StreamError(Struct):
    code: str
    message: str
    type: str = "server_error"
    param: str | None = None


class StreamDone(Struct):
    data: str = "[DONE]"


EventPayload = (
    Thread | Run | RunStep | RunStepDelta | Message | MessageDelta | StreamError | StreamDone
)


class RunEvent(Struct):
    """One event of a run's stream, as stored and as streamed."""

    run_id: str
    sequence_number: int
    event: str
    data: EventPayload


def payload_type(event: str) -> type[EventPayload]:
    """The payload type an OpenAI event name carries."""
    if event == "thread.created":
        return Thread
    if event == "thread.run.step.delta":
        return RunStepDelta
    if event.startswith("thread.run.step."):
        return RunStep
    if event.startswith("thread.run."):
        return Run
    if event == "thread.message.delta":
        return MessageDelta
    if event.startswith("thread.message."):
        return Message
    if event == "error":
        return StreamError
    return StreamDone
