"""The error model of AssistantService, ThreadService and MessageService: every OpenAI limit is
INVALID_ARGUMENT with ErrorInfo and a BadRequest violation naming the field; a wrong id prefix is
INVALID_ARGUMENT; an unknown id is NOT_FOUND; no caller mistake is INTERNAL, and no message
carries internals."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import message as protobuf_message
from google.protobuf import struct_pb2

from assistants.v1 import (
    assistant_service_pb2,
    common_pb2,
    message_pb2,
    message_service_pb2,
    thread_service_pb2,
)
from assistants.v1 import assistant_service_pb2 as apb
from assistants.v1 import message_service_pb2 as mpb
from assistants.v1 import thread_service_pb2 as tpb

from ..support.stubs import Stubs
from .rich_errors import RichError, invalid_field, not_found

MODEL = "scripted-echo"
Call = Callable[[Stubs, str], Awaitable[Any]]
"""Makes one call, given the stubs and the id of an existing thread."""


def assistant(**fields: Any) -> Call:
    return lambda stubs, _: stubs.assistants.CreateAssistant(
        apb.CreateAssistantRequest(model=MODEL, **fields)
    )


def thread(**fields: Any) -> Call:
    return lambda stubs, _: stubs.threads.CreateThread(tpb.CreateThreadRequest(**fields))


def message(**fields: Any) -> Call:
    fields.setdefault("role", "user")
    if "parts" not in fields:
        fields.setdefault("text", "hi")
    return lambda stubs, thread_id: stubs.messages.CreateMessage(
        mpb.CreateMessageRequest(thread_id=thread_id, **fields)
    )


def function(name: str = "f", description: str = "", **schema: Any) -> common_pb2.Tool:
    parameters = None
    if schema:
        parameters = struct_pb2.Struct()
        parameters.update(schema)
    return common_pb2.Tool(
        function=common_pb2.FunctionTool(name=name, description=description, parameters=parameters)
    )


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"x": value}}
    return value


def wide(properties: int) -> dict[str, Any]:
    return {f"p{i}": {"type": "string"} for i in range(properties)}


def text_parts(count: int, text: str | None = None) -> message_pb2.MessageContentParts:
    return message_pb2.MessageContentParts(
        parts=[
            message_pb2.MessageContentPartInput(text=f"p{i}" if text is None else text)
            for i in range(count)
        ]
    )


def image_url(url: str) -> message_pb2.MessageContentParts:
    return message_pb2.MessageContentParts(
        parts=[message_pb2.MessageContentPartInput(image_url=message_pb2.ImageUrl(url=url))]
    )


def attachments(count: int) -> list[message_pb2.Attachment]:
    return [message_pb2.Attachment(file_id=f"file-{i}") for i in range(count)]


def metadata_pairs(count: int) -> dict[str, str]:
    return {f"key{i}": "value" for i in range(count)}


LONG_KEY = "k" * 65
CODE_INTERPRETER = common_pb2.Tool(type="code_interpreter")

OVER_THE_LIMIT: list[tuple[str, Call, str]] = [
    ("assistant name", assistant(name="n" * 257), "name"),
    ("assistant description", assistant(description="d" * 513), "description"),
    ("assistant instructions", assistant(instructions="i" * 256_001), "instructions"),
    ("assistant tools", assistant(tools=[CODE_INTERPRETER] * 129), "tools"),
    ("assistant metadata pairs", assistant(metadata=metadata_pairs(17)), "metadata"),
    ("metadata key", assistant(metadata={LONG_KEY: "v"}), f"metadata[{LONG_KEY[:16]}…]"),
    ("metadata value", assistant(metadata={"k": "v" * 513}), "metadata[k]"),
    ("empty metadata key", assistant(metadata={"": "v"}), "metadata"),
    ("temperature", assistant(temperature=2.01), "temperature"),
    ("temperature below", assistant(temperature=-0.1), "temperature"),
    ("temperature nan", assistant(temperature=math.nan), "temperature"),
    ("top_p", assistant(top_p=1.01), "top_p"),
    ("reasoning effort", assistant(reasoning_effort="extreme"), "reasoning_effort"),
    ("function name", assistant(tools=[function("get weather")]), "tools[0].function.name"),
    ("function name length", assistant(tools=[function("f" * 65)]), "tools[0].function.name"),
    (
        "function description",
        assistant(tools=[function(description="d" * 1025)]),
        "tools[0].function.description",
    ),
    (
        "duplicate function",
        assistant(tools=[function("same"), function("same")]),
        "tools[1].function.name",
    ),
    (
        "function parameters size",
        assistant(tools=[function(type="object", properties=wide(5001))]),
        "tools[0].function.parameters",
    ),
    # The protobuf decoder's nesting limit is reached before the schema depth limit: either way
    # the caller learns the request is refused for its nesting.
    ("function parameters depth", assistant(tools=[function(**nested(16))]), "request"),
    (
        "file search results",
        assistant(
            tools=[common_pb2.Tool(file_search=common_pb2.FileSearchTool(max_num_results=51))]
        ),
        "tools[0].file_search.max_num_results",
    ),
    (
        "file search ranker",
        assistant(
            tools=[
                common_pb2.Tool(
                    file_search=common_pb2.FileSearchTool(
                        ranking_options=common_pb2.FileSearchRankingOptions(ranker="best")
                    )
                )
            ]
        ),
        "tools[0].file_search.ranking_options.ranker",
    ),
    (
        "file search threshold",
        assistant(
            tools=[
                common_pb2.Tool(
                    file_search=common_pb2.FileSearchTool(
                        ranking_options=common_pb2.FileSearchRankingOptions(score_threshold=1.5)
                    )
                )
            ]
        ),
        "tools[0].file_search.ranking_options.score_threshold",
    ),
    (
        "code interpreter files",
        assistant(
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(
                    file_ids=[f"file-{i}" for i in range(21)]
                )
            )
        ),
        "tool_resources.code_interpreter.file_ids",
    ),
    (
        "vector stores",
        assistant(
            tool_resources=common_pb2.ToolResources(
                file_search=common_pb2.FileSearchResources(vector_store_ids=["vs_1", "vs_2"])
            )
        ),
        "tool_resources.file_search.vector_store_ids",
    ),
    (
        "empty file id",
        assistant(
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(file_ids=["file-1", ""])
            )
        ),
        "tool_resources.code_interpreter.file_ids[1]",
    ),
    (
        "long vector store id",
        thread(
            tool_resources=common_pb2.ToolResources(
                file_search=common_pb2.FileSearchResources(vector_store_ids=["v" * 129])
            )
        ),
        "tool_resources.file_search.vector_store_ids[0]",
    ),
    (
        "response format type",
        assistant(response_format=common_pb2.ResponseFormat(type="xml")),
        "response_format.type",
    ),
    (
        "json schema missing",
        assistant(response_format=common_pb2.ResponseFormat(type="json_schema")),
        "response_format.json_schema",
    ),
    (
        "json schema name",
        assistant(
            response_format=common_pb2.ResponseFormat(
                json_schema=common_pb2.JsonSchemaResponseFormat(name="")
            )
        ),
        "response_format.json_schema.name",
    ),
    ("thread metadata", thread(metadata=metadata_pairs(17)), "metadata"),
    (
        "thread messages",
        thread(messages=[message_pb2.MessageInput(role="user", text="m")] * 33),
        "messages",
    ),
    (
        "thread message text",
        thread(messages=[message_pb2.MessageInput(role="user", text="t" * 256_001)]),
        "messages[0].text",
    ),
    (
        "thread tool resources",
        thread(
            tool_resources=common_pb2.ToolResources(
                file_search=common_pb2.FileSearchResources(vector_store_ids=["vs_1", "vs_2"])
            )
        ),
        "tool_resources.file_search.vector_store_ids",
    ),
    ("message text", message(text="t" * 256_001), "text"),
    ("message parts", message(parts=text_parts(65)), "parts"),
    ("message attachments", message(attachments=attachments(21)), "attachments"),
    ("message metadata", message(metadata=metadata_pairs(17)), "metadata"),
    (
        "image url length",
        message(parts=image_url("https://example.com/" + "a" * 8200)),
        "parts.parts[0].image_url.url",
    ),
    ("empty message text", message(text=""), "text"),
    ("empty text part", message(parts=text_parts(1, text="")), "parts.parts[0].text"),
    (
        "empty text part of a thread message",
        thread(messages=[message_pb2.MessageInput(role="user", parts=text_parts(1, text=""))]),
        "messages[0].parts.parts[0].text",
    ),
]


@pytest.fixture
async def thread_id(stubs: Stubs) -> str:
    return (await stubs.threads.CreateThread(tpb.CreateThreadRequest())).thread.id


@pytest.mark.parametrize(
    ("call", "field_path"),
    [pytest.param(call, field_path, id=name) for name, call, field_path in OVER_THE_LIMIT],
)
async def test_every_limit_is_invalid_argument_naming_the_field(
    stubs: Stubs, thread_id: str, call: Call, field_path: str
) -> None:
    error = await invalid_field(call(stubs, thread_id), field_path)
    assert error.reason == "INVALID_ARGUMENT"
    # The message repeats the violations for people reading a log or grpcurl's output.
    assert field_path in error.message


async def test_values_at_the_limits_are_accepted(stubs: Stubs, thread_id: str) -> None:
    full_metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    created = await stubs.assistants.CreateAssistant(
        apb.CreateAssistantRequest(
            model=MODEL,
            name="n" * 256,
            description="d" * 512,
            instructions="i" * 256_000,
            tools=[function(f"f{i}", description="d" * 1024) for i in range(128)],
            metadata=full_metadata,
            temperature=2,
            top_p=0,
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(
                    file_ids=[f"file-{i}" for i in range(20)]
                ),
                file_search=common_pb2.FileSearchResources(vector_store_ids=["vs_1"]),
            ),
        )
    )
    assert len(created.assistant.tools) == 128
    assert dict(created.assistant.metadata) == full_metadata
    await stubs.threads.CreateThread(
        tpb.CreateThreadRequest(
            messages=[message_pb2.MessageInput(role="user", text="m")] * 32,
            metadata=full_metadata,
        )
    )
    await stubs.messages.CreateMessage(
        mpb.CreateMessageRequest(
            thread_id=thread_id, role="user", parts=text_parts(64), attachments=attachments(20)
        )
    )
    await stubs.messages.CreateMessage(
        mpb.CreateMessageRequest(thread_id=thread_id, role="user", text="t" * 256_000)
    )


async def test_one_error_reports_every_bad_field(stubs: Stubs) -> None:
    error = await invalid_field(
        stubs.assistants.CreateAssistant(
            apb.CreateAssistantRequest(model=MODEL, name="n" * 300, top_p=5, reasoning_effort="x")
        ),
        "name",
    )
    assert set(error.violations) == {"name", "top_p", "reasoning_effort"}


# --- ids ----------------------------------------------------------------------------------

ASSISTANT_ID = "asst_" + "a" * 24
THREAD_ID = "thread_" + "t" * 24
MESSAGE_ID = "msg_" + "m" * 24

PerIdCall = Callable[[Stubs, dict[str, Any]], Awaitable[Any]]
"""Makes one call with the given id fields."""

PER_ID_CALLS: list[tuple[str, PerIdCall, tuple[str]]] = [
    (
        "GetAssistant",
        lambda s, ids: s.assistants.GetAssistant(apb.GetAssistantRequest(**ids)),
        ("assistant_id",),
    ),
    (
        "UpdateAssistant",
        lambda s, ids: s.assistants.UpdateAssistant(apb.UpdateAssistantRequest(name="x", **ids)),
        ("assistant_id",),
    ),
    (
        "DeleteAssistant",
        lambda s, ids: s.assistants.DeleteAssistant(apb.DeleteAssistantRequest(**ids)),
        ("assistant_id",),
    ),
    ("GetThread", lambda s, ids: s.threads.GetThread(tpb.GetThreadRequest(**ids)), ("thread_id",)),
    (
        "UpdateThread",
        lambda s, ids: s.threads.UpdateThread(tpb.UpdateThreadRequest(metadata={"a": "b"}, **ids)),
        ("thread_id",),
    ),
    (
        "DeleteThread",
        lambda s, ids: s.threads.DeleteThread(tpb.DeleteThreadRequest(**ids)),
        ("thread_id",),
    ),
    (
        "CreateMessage",
        lambda s, ids: s.messages.CreateMessage(
            mpb.CreateMessageRequest(role="user", text="hi", **ids)
        ),
        ("thread_id",),
    ),
    (
        "ListMessages",
        lambda s, ids: s.messages.ListMessages(mpb.ListMessagesRequest(**ids)),
        ("thread_id",),
    ),
    (
        "GetMessage",
        lambda s, ids: s.messages.GetMessage(mpb.GetMessageRequest(**ids)),
        ("message_id",),
    ),
    (
        "UpdateMessage",
        lambda s, ids: s.messages.UpdateMessage(
            mpb.UpdateMessageRequest(metadata={"a": "b"}, **ids)
        ),
        ("message_id",),
    ),
    (
        "DeleteMessage",
        lambda s, ids: s.messages.DeleteMessage(mpb.DeleteMessageRequest(**ids)),
        ("message_id",),
    ),
]

WELL_FORMED = {"assistant_id": ASSISTANT_ID, "thread_id": THREAD_ID, "message_id": MESSAGE_ID}
# Each id field given an id of another kind.
WRONG_KIND = {"assistant_id": THREAD_ID, "thread_id": MESSAGE_ID, "message_id": ASSISTANT_ID}


@pytest.mark.parametrize(
    ("call", "id_fields"), [pytest.param(c, f, id=name) for name, c, f in PER_ID_CALLS]
)
async def test_unknown_ids_are_not_found(
    stubs: Stubs, call: PerIdCall, id_fields: tuple[str]
) -> None:
    (field,) = id_fields
    await not_found(call(stubs, {field: WELL_FORMED[field]}), WELL_FORMED[field])


@pytest.mark.parametrize(
    ("call", "id_fields"), [pytest.param(c, f, id=name) for name, c, f in PER_ID_CALLS]
)
async def test_missing_wrong_kind_and_malformed_ids_are_invalid_arguments(
    stubs: Stubs, call: PerIdCall, id_fields: tuple[str]
) -> None:
    (field,) = id_fields
    prefix = WELL_FORMED[field].split("_")[0] + "_"
    error = await invalid_field(call(stubs, {}), field)
    assert error.violations[field] == "is required"
    error = await invalid_field(call(stubs, {field: WRONG_KIND[field]}), field)
    assert prefix in error.violations[field]
    for malformed in (
        prefix,
        prefix + "a b",
        prefix + "x" * 100,
        prefix + "ünïcode",
        prefix + "\0",
    ):
        await invalid_field(call(stubs, {field: malformed}), field)


async def test_an_optional_thread_id_must_still_be_a_thread_id(stubs: Stubs) -> None:
    await invalid_field(
        stubs.messages.GetMessage(
            mpb.GetMessageRequest(thread_id=ASSISTANT_ID, message_id=MESSAGE_ID)
        ),
        "thread_id",
    )
    await invalid_field(
        stubs.messages.DeleteMessage(
            mpb.DeleteMessageRequest(thread_id=ASSISTANT_ID, message_id=MESSAGE_ID)
        ),
        "thread_id",
    )


# --- nothing the caller does is INTERNAL ----------------------------------------------------

ODD_TEXTS = ["", "\0", "💥" * 300, "' OR 1=1; DROP TABLE assistants; --", "x" * 70_000, "{}"]
SERVICES = [
    (assistant_service_pb2, "AssistantService", "assistants"),
    (thread_service_pb2, "ThreadService", "threads"),
    (message_service_pb2, "MessageService", "messages"),
]


def odd_request(request_class: type[protobuf_message.Message], text: str) -> Any:
    """A request with every top-level text field set to `text`, every number out of range and
    every map holding `text` as key and value."""
    request = request_class()
    for field in request.DESCRIPTOR.fields:
        name = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(request, name)[text[:100]] = text
        elif field.type == field.TYPE_STRING and not field.is_repeated:
            setattr(request, name, text)
        elif field.type == field.TYPE_INT32 and not field.is_repeated:
            setattr(request, name, -(2**31))
        elif field.type == field.TYPE_DOUBLE and not field.is_repeated:
            setattr(request, name, math.inf)
    return request


@pytest.mark.parametrize(("module", "service", "attribute"), SERVICES)
async def test_odd_input_is_never_an_internal_error(
    stubs: Stubs, module: Any, service: str, attribute: str
) -> None:
    descriptor = module.DESCRIPTOR.services_by_name[service]
    stub = getattr(stubs, attribute)
    for method in descriptor.methods:
        request_class = getattr(module, method.input_type.name)
        for text in ODD_TEXTS:
            try:
                await getattr(stub, method.name)(odd_request(request_class, text), timeout=10)
            except grpc.aio.AioRpcError as failure:
                error = RichError.of(failure)
                error.assert_clean()
                assert error.code not in (
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                ), (method.name, text[:20], error)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x0a\x02\xff\xfe", id="text not utf-8"),
        pytest.param(b"\xff\xff\xff", id="corrupt"),
        pytest.param(b"\x0a\x10abc", id="truncated"),
    ],
)
async def test_undecodable_requests_are_invalid_arguments(stubs: Stubs, payload: bytes) -> None:
    # The raw bytes go out as they are: no serializer stands in between.
    create: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = stubs.channel.unary_unary(
        "/assistants.v1.AssistantService/CreateAssistant"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(payload)
    error = RichError.of(caught.value)
    error.assert_clean()
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in error.violations
