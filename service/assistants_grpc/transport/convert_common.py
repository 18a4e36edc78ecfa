"""Conversion of the shared pieces (tools, formats, choices, resources) between proto and domain.

Reading a request also checks what only the wire shape can show (a oneof and its `type`
disagreeing, an unknown `type`); limits are checked by the domain afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from google.protobuf import json_format, struct_pb2

from assistants.v1 import common_pb2 as pb
from assistants_grpc.domain.models import (
    FileSearchOptions,
    FunctionDefinition,
    JsonSchemaFormat,
    RankingOptions,
    ResponseFormat,
    Tool,
    ToolChoice,
    ToolResources,
    TruncationStrategy,
    Usage,
)
from assistants_grpc.domain.validation import Violations
from assistants_grpc.ports.storage import Page


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(value)
    return result


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def variant_type(
    v: Violations, field: str, declared: str, variant: str | None, allowed: tuple[str, ...]
) -> str:
    """The union's type: the set variant, or the declared `type` when no variant is set."""
    if variant is not None:
        if declared and declared != variant:
            v.add(f"{field}.type", f"is '{declared}' but the '{variant}' variant is set")
        return variant
    if not declared:
        v.add(field, "must set a variant or 'type'")
        return ""
    if declared not in allowed:
        v.add(f"{field}.type", "must be one of " + ", ".join(f"'{a}'" for a in allowed))
    return declared


# --- tools --------------------------------------------------------------------------------

TOOL_TYPES = ("code_interpreter", "file_search", "function")


def tool_from_proto(v: Violations, field: str, tool: pb.Tool) -> Tool:
    kind = variant_type(v, field, tool.type, tool.WhichOneof("tool"), TOOL_TYPES)
    if kind == "function":
        if not tool.HasField("function"):
            v.add(f"{field}.function", "is required for a function tool")
            return Tool(type=kind)
        fn = tool.function
        return Tool(
            type=kind,
            function=FunctionDefinition(
                name=fn.name,
                description=fn.description or None,
                parameters=struct_to_dict(fn.parameters) if fn.HasField("parameters") else None,
                strict=fn.strict if fn.HasField("strict") else None,
            ),
        )
    if kind == "file_search" and tool.HasField("file_search"):
        fs = tool.file_search
        return Tool(
            type=kind,
            file_search=FileSearchOptions(
                max_num_results=fs.max_num_results if fs.HasField("max_num_results") else None,
                ranking_options=RankingOptions(
                    ranker=fs.ranking_options.ranker or None,
                    score_threshold=fs.ranking_options.score_threshold,
                )
                if fs.HasField("ranking_options")
                else None,
            ),
        )
    return Tool(type=kind)


def tools_from_proto(v: Violations, field: str, tools: Any) -> list[Tool]:
    return [tool_from_proto(v, f"{field}[{i}]", t) for i, t in enumerate(tools)]


def tool_to_proto(tool: Tool) -> pb.Tool:
    if tool.type == "function" and tool.function is not None:
        fn = tool.function
        return pb.Tool(
            type="function",
            function=pb.FunctionTool(
                name=fn.name,
                description=fn.description or "",
                parameters=dict_to_struct(fn.parameters) if fn.parameters is not None else None,
                strict=fn.strict,
            ),
        )
    if tool.type == "file_search":
        options = tool.file_search
        return pb.Tool(
            type="file_search",
            file_search=pb.FileSearchTool(
                max_num_results=options.max_num_results if options else None,
                ranking_options=pb.FileSearchRankingOptions(
                    ranker=options.ranking_options.ranker or "",
                    score_threshold=options.ranking_options.score_threshold,
                )
                if options and options.ranking_options
                else None,
            ),
        )
    return pb.Tool(type=tool.type, code_interpreter=pb.CodeInterpreterTool())


# --- tool resources -----------------------------------------------------------------------


def tool_resources_from_proto(resources: pb.ToolResources) -> ToolResources:
    return ToolResources(
        code_interpreter_file_ids=list(resources.code_interpreter.file_ids)
        if resources.HasField("code_interpreter")
        else None,
        file_search_vector_store_ids=list(resources.file_search.vector_store_ids)
        if resources.HasField("file_search")
        else None,
    )


def tool_resources_to_proto(resources: ToolResources | None) -> pb.ToolResources | None:
    if resources is None:
        return None
    return pb.ToolResources(
        code_interpreter=pb.CodeInterpreterResources(file_ids=resources.code_interpreter_file_ids)
        if resources.code_interpreter_file_ids is not None
        else None,
        file_search=pb.FileSearchResources(vector_store_ids=resources.file_search_vector_store_ids)
        if resources.file_search_vector_store_ids is not None
        else None,
    )


# --- response format ----------------------------------------------------------------------

RESPONSE_FORMAT_TYPES = ("auto", "text", "json_object", "json_schema")


def response_format_from_proto(v: Violations, field: str, fmt: pb.ResponseFormat) -> ResponseFormat:
    kind = variant_type(v, field, fmt.type, fmt.WhichOneof("format"), RESPONSE_FORMAT_TYPES)
    if kind == "json_schema":
        if not fmt.HasField("json_schema"):
            v.add(f"{field}.json_schema", "is required when type is 'json_schema'")
            return ResponseFormat(type=kind)
        js = fmt.json_schema
        return ResponseFormat(
            type=kind,
            json_schema=JsonSchemaFormat(
                name=js.name,
                description=js.description or None,
                schema=struct_to_dict(js.schema) if js.HasField("schema") else None,
                strict=js.strict if js.HasField("strict") else None,
            ),
        )
    return ResponseFormat(type=kind)


def response_format_to_proto(fmt: ResponseFormat | None) -> pb.ResponseFormat | None:
    if fmt is None:
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        js = fmt.json_schema
        return pb.ResponseFormat(
            type="json_schema",
            json_schema=pb.JsonSchemaResponseFormat(
                name=js.name,
                description=js.description or "",
                schema=dict_to_struct(js.schema) if js.schema is not None else None,
                strict=js.strict,
            ),
        )
    if fmt.type == "text":
        return pb.ResponseFormat(type="text", text=pb.TextResponseFormat())
    if fmt.type == "json_object":
        return pb.ResponseFormat(type="json_object", json_object=pb.JsonObjectResponseFormat())
    return pb.ResponseFormat(type="auto", auto=pb.AutoResponseFormat())


# --- tool choice and truncation -----------------------------------------------------------


def tool_choice_from_proto(v: Violations, field: str, choice: pb.ToolChoice) -> ToolChoice:
    which = choice.WhichOneof("choice")
    if which == "mode":
        if choice.mode not in ("none", "auto", "required"):
            v.add(f"{field}.mode", "must be 'none', 'auto' or 'required'")
        return ToolChoice(type=choice.mode)
    if which == "tool":
        named = choice.tool
        if named.type not in TOOL_TYPES:
            v.add(f"{field}.tool.type", "must be 'function', 'code_interpreter' or 'file_search'")
        return ToolChoice(type=named.type, function_name=named.function.name or None)
    v.add(field, "must set 'mode' or 'tool'")
    return ToolChoice(type="auto")


def tool_choice_fields(choice: ToolChoice) -> dict[str, Any]:
    if choice.is_mode:
        return {"mode": choice.type}
    named: dict[str, Any] = {"type": choice.type}
    if choice.function_name:
        named["function"] = {"name": choice.function_name}
    return {"tool": named}


def truncation_from_proto(strategy: pb.TruncationStrategy) -> TruncationStrategy:
    return TruncationStrategy(
        type=strategy.type,
        last_messages=strategy.last_messages if strategy.HasField("last_messages") else None,
    )


def truncation_fields(strategy: TruncationStrategy) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": strategy.type}
    if strategy.last_messages is not None:
        fields["last_messages"] = strategy.last_messages
    return fields


def usage_fields(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def optional_str(message: Any, field: str) -> str | None:
    return getattr(message, field) if message.HasField(field) else None


def optional_float(message: Any, field: str) -> float | None:
    return float(getattr(message, field)) if message.HasField(field) else None


def optional_int(message: Any, field: str) -> int | None:
    return int(getattr(message, field)) if message.HasField(field) else None


def optional_bool(message: Any, field: str) -> bool | None:
    return bool(getattr(message, field)) if message.HasField(field) else None


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Identified)
ListResponse = TypeVar("ListResponse")


def list_response(
    response_class: Callable[..., ListResponse],
    page: Page[Item],
    fields: Callable[[Item], dict[str, Any]],
) -> ListResponse:
    """An OpenAI-style list response (`object`, `data`, `first_id`, `last_id`, `has_more`),
    its items built in place in the repeated field rather than built and then copied."""
    response: Any = response_class(object="list", has_more=page.has_more)
    add = response.data.add
    for item in page.items:
        add(**fields(item))
    if page.items:
        response.first_id, response.last_id = page.items[0].id, page.items[-1].id
    result: ListResponse = response
    return result
