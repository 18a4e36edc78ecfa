"""Checks of caller input against the OpenAI limits.

Each checker appends to a `Violations` list with the field's path as the contract names it
(`tools[2].function.name`), so one error can report every bad field at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from assistants_grpc.domain import limits
from assistants_grpc.domain.errors import FieldViolation, InvalidArgument
from assistants_grpc.domain.models import (
    Attachment,
    ContentPart,
    NewMessage,
    ResponseFormat,
    Tool,
    ToolChoice,
    ToolResources,
    TruncationStrategy,
)

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_TYPES = ("code_interpreter", "file_search", "function")
RESPONSE_FORMAT_TYPES = ("auto", "text", "json_object", "json_schema")
TOOL_CHOICE_MODES = ("none", "auto", "required")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
IMAGE_DETAILS = ("auto", "low", "high")
ROLES = ("user", "assistant")
ORDERS = ("asc", "desc")
RANKERS = ("auto", "default_2024_08_21")


class Violations:
    """Collects field violations; `raise_if_any` turns them into one InvalidArgument."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def check_length(v: Violations, field: str, value: str | None, maximum: int) -> None:
    if value is not None and len(value) > maximum:
        v.add(field, f"must be at most {maximum} characters (got {len(value)})")


def check_metadata(v: Violations, field: str, metadata: dict[str, str]) -> None:
    if len(metadata) > limits.MAX_METADATA_PAIRS:
        v.add(field, f"must have at most {limits.MAX_METADATA_PAIRS} pairs (got {len(metadata)})")
        return
    for key, value in metadata.items():
        if not key:
            v.add(field, "keys must not be empty")
        elif len(key) > limits.MAX_METADATA_KEY_LENGTH:
            v.add(
                f"{field}[{key[:16]}…]",
                f"key must be at most {limits.MAX_METADATA_KEY_LENGTH} characters",
            )
        if len(value) > limits.MAX_METADATA_VALUE_LENGTH:
            v.add(
                f"{field}[{key[:64]}]",
                f"value must be at most {limits.MAX_METADATA_VALUE_LENGTH} characters",
            )


def check_number(v: Violations, field: str, value: float | None, low: float, high: float) -> None:
    if value is not None and (math.isnan(value) or not low <= value <= high):
        v.add(field, f"must be between {low:g} and {high:g}")


def check_choice(v: Violations, field: str, value: str | None, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        v.add(field, "must be one of " + ", ".join(f"'{a}'" for a in allowed))


def check_model_name(v: Violations, field: str, model: str, *, required: bool) -> None:
    if not model:
        if required:
            v.add(field, "is required")
        return
    check_length(v, field, model, limits.MAX_MODEL_NAME_LENGTH)


def _schema_size(value: Any, depth: int = 0) -> tuple[int, int]:
    """(node count, maximum depth) of a JSON value, stopping early once past the limits."""
    if depth > limits.MAX_SCHEMA_DEPTH:
        return 1, depth
    if isinstance(value, dict):
        nodes, deepest = 1, depth
        for item in value.values():
            n, d = _schema_size(item, depth + 1)
            nodes += n
            deepest = max(deepest, d)
            if nodes > limits.MAX_SCHEMA_NODES or deepest > limits.MAX_SCHEMA_DEPTH:
                break
        return nodes, deepest
    if isinstance(value, list):
        nodes, deepest = 1, depth
        for item in value:
            n, d = _schema_size(item, depth + 1)
            nodes += n
            deepest = max(deepest, d)
            if nodes > limits.MAX_SCHEMA_NODES or deepest > limits.MAX_SCHEMA_DEPTH:
                break
        return nodes, deepest
    return 1, depth


def check_json_schema(v: Violations, field: str, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    nodes, depth = _schema_size(schema)
    if depth > limits.MAX_SCHEMA_DEPTH:
        v.add(field, f"must be nested at most {limits.MAX_SCHEMA_DEPTH} levels deep")
    elif nodes > limits.MAX_SCHEMA_NODES:
        v.add(field, f"must have at most {limits.MAX_SCHEMA_NODES} nodes")


def check_tools(v: Violations, field: str, tools: list[Tool], maximum: int) -> None:
    if len(tools) > maximum:
        v.add(field, f"must have at most {maximum} tools (got {len(tools)})")
        return
    names: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"{field}[{i}]"
        if tool.type not in TOOL_TYPES:
            v.add(f"{path}.type", "must be one of 'code_interpreter', 'file_search', 'function'")
            continue
        if tool.type == "function":
            fn = tool.function
            if fn is None:
                v.add(f"{path}.function", "is required for a function tool")
                continue
            if not _FUNCTION_NAME.match(fn.name):
                v.add(
                    f"{path}.function.name",
                    "must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes",
                )
            elif fn.name in names:
                v.add(f"{path}.function.name", f"duplicates the function '{fn.name}'")
            names.add(fn.name)
            check_length(
                v,
                f"{path}.function.description",
                fn.description,
                limits.MAX_FUNCTION_DESCRIPTION_LENGTH,
            )
            check_json_schema(v, f"{path}.function.parameters", fn.parameters)
        if tool.type == "file_search" and tool.file_search is not None:
            options = tool.file_search
            if options.max_num_results is not None and not 1 <= options.max_num_results <= 50:
                v.add(f"{path}.file_search.max_num_results", "must be between 1 and 50")
            if options.ranking_options is not None:
                ranking = options.ranking_options
                check_choice(
                    v, f"{path}.file_search.ranking_options.ranker", ranking.ranker, RANKERS
                )
                check_number(
                    v,
                    f"{path}.file_search.ranking_options.score_threshold",
                    ranking.score_threshold,
                    0,
                    1,
                )


def check_tool_resources(v: Violations, field: str, resources: ToolResources | None) -> None:
    if resources is None:
        return
    files = resources.code_interpreter_file_ids or []
    if len(files) > limits.MAX_CODE_INTERPRETER_FILES:
        v.add(
            f"{field}.code_interpreter.file_ids",
            f"must have at most {limits.MAX_CODE_INTERPRETER_FILES} files",
        )
    stores = resources.file_search_vector_store_ids or []
    if len(stores) > limits.MAX_VECTOR_STORES:
        v.add(
            f"{field}.file_search.vector_store_ids",
            f"must have at most {limits.MAX_VECTOR_STORES} vector store",
        )
    for path, ids in (
        (f"{field}.code_interpreter.file_ids", files),
        (f"{field}.file_search.vector_store_ids", stores),
    ):
        for i, item in enumerate(ids):
            if not item or len(item) > 128:
                v.add(f"{path}[{i}]", "must be 1 to 128 characters")


def check_response_format(v: Violations, field: str, fmt: ResponseFormat | None) -> None:
    if fmt is None:
        return
    if fmt.type not in RESPONSE_FORMAT_TYPES:
        v.add(f"{field}.type", "must be one of 'auto', 'text', 'json_object', 'json_schema'")
        return
    if fmt.type == "json_schema":
        if fmt.json_schema is None:
            v.add(f"{field}.json_schema", "is required when type is 'json_schema'")
            return
        if not _FUNCTION_NAME.match(fmt.json_schema.name):
            v.add(
                f"{field}.json_schema.name",
                "must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes",
            )
        check_json_schema(v, f"{field}.json_schema.schema", fmt.json_schema.schema)


def check_tool_choice(
    v: Violations, field: str, choice: ToolChoice | None, tools: list[Tool]
) -> None:
    if choice is None or choice.is_mode:
        return
    if choice.type not in TOOL_TYPES:
        v.add(
            field,
            "must be 'none', 'auto', 'required' or a tool of type 'function', "
            "'code_interpreter' or 'file_search'",
        )
        return
    if choice.type == "function":
        if not choice.function_name:
            v.add(f"{field}.tool.function.name", "is required when type is 'function'")
        elif not any(
            t.type == "function" and t.function and t.function.name == choice.function_name
            for t in tools
        ):
            v.add(f"{field}.tool.function.name", f"names no function tool '{choice.function_name}'")


def check_truncation(v: Violations, field: str, strategy: TruncationStrategy | None) -> None:
    if strategy is None:
        return
    check_choice(v, f"{field}.type", strategy.type, ("auto", "last_messages"))
    if strategy.type == "last_messages":
        if strategy.last_messages is None:
            v.add(f"{field}.last_messages", "is required when type is 'last_messages'")
        elif strategy.last_messages < 1:
            v.add(f"{field}.last_messages", "must be at least 1")


def check_token_budget(v: Violations, field: str, value: int | None) -> None:
    if value is not None and value < limits.MIN_RUN_TOKEN_BUDGET:
        v.add(field, f"must be at least {limits.MIN_RUN_TOKEN_BUDGET}")


def _check_content_part(v: Violations, path: str, part: ContentPart) -> None:
    if part.type == "text":
        if part.text is None or part.text == "":
            v.add(f"{path}.text", "must not be empty")
        else:
            check_length(v, f"{path}.text", part.text, limits.MAX_MESSAGE_TEXT_LENGTH)
    elif part.type == "image_file":
        if part.image_file is None or not part.image_file.file_id:
            v.add(f"{path}.image_file.file_id", "is required")
        else:
            check_choice(v, f"{path}.image_file.detail", part.image_file.detail, IMAGE_DETAILS)
    elif part.type == "image_url":
        if part.image_url is None or not part.image_url.url:
            v.add(f"{path}.image_url.url", "is required")
        else:
            url = part.image_url.url
            check_length(v, f"{path}.image_url.url", url, limits.MAX_URL_LENGTH)
            if not url.startswith(("http://", "https://", "data:image/")):
                v.add(f"{path}.image_url.url", "must be an http(s) URL or an image data URL")
            check_choice(v, f"{path}.image_url.detail", part.image_url.detail, IMAGE_DETAILS)
    else:
        v.add(f"{path}.type", "must be one of 'text', 'image_file', 'image_url'")


def _check_attachments(v: Violations, field: str, attachments: list[Attachment]) -> None:
    if len(attachments) > limits.MAX_ATTACHMENTS:
        v.add(field, f"must have at most {limits.MAX_ATTACHMENTS} attachments")
        return
    for i, attachment in enumerate(attachments):
        if not attachment.file_id or len(attachment.file_id) > 128:
            v.add(f"{field}[{i}].file_id", "is required and at most 128 characters")
        for j, tool in enumerate(attachment.tools):
            check_choice(
                v, f"{field}[{i}].tools[{j}].type", tool, ("code_interpreter", "file_search")
            )


def check_new_message(v: Violations, field: str, message: NewMessage) -> None:
    """`field` is the message's own path prefix ("" for CreateMessage's flat request)."""
    prefix = f"{field}." if field else ""
    if message.role not in ROLES:
        v.add(f"{prefix}role", "must be 'user' or 'assistant'")
    if not message.content:
        v.add(f"{prefix}content", "is required: give text or at least one part")
    elif len(message.content) > limits.MAX_CONTENT_PARTS:
        v.add(f"{prefix}parts", f"must have at most {limits.MAX_CONTENT_PARTS} parts")
    else:
        single_text = (
            not message.given_as_parts
            and len(message.content) == 1
            and message.content[0].type == "text"
        )
        for i, part in enumerate(message.content):
            path = f"{prefix}text" if single_text else f"{prefix}parts.parts[{i}]"
            if single_text:
                if not part.text:
                    v.add(path, "must not be empty")
                else:
                    check_length(v, path, part.text, limits.MAX_MESSAGE_TEXT_LENGTH)
            else:
                _check_content_part(v, path, part)
    _check_attachments(v, f"{prefix}attachments", message.attachments)
    check_metadata(v, f"{prefix}metadata", message.metadata)


def check_new_messages(v: Violations, field: str, messages: list[NewMessage]) -> None:
    if len(messages) > limits.MAX_THREAD_MESSAGES:
        v.add(field, f"must have at most {limits.MAX_THREAD_MESSAGES} messages")
        return
    for i, message in enumerate(messages):
        check_new_message(v, f"{field}[{i}]", message)


def check_page(
    v: Violations, limit: int | None, order: str, after: str, before: str
) -> tuple[int, str]:
    """Validate list parameters; returns the effective (limit, order)."""
    effective_limit = limits.LIST_LIMIT_DEFAULT if limit is None else limit
    if not 1 <= effective_limit <= limits.LIST_LIMIT_MAX:
        v.add("limit", f"must be between 1 and {limits.LIST_LIMIT_MAX}")
    effective_order = order or "desc"
    check_choice(v, "order", effective_order, ORDERS)
    if after and before:
        v.add("before", "cannot be combined with 'after'")
    return effective_limit, effective_order
