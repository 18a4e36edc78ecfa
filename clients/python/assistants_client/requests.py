"""Request messages from keyword arguments.

Each argument becomes the request field of the same name, converted from OpenAI's shape where it
has one (convert.py). `None` leaves a field unset, which means "the default" on create and
"clear it" on update: updates name every argument given in the request's `update_mask`, so a
field left out stays as it is and a field given as None is cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from . import convert

R = TypeVar("R", bound=ProtoMessage)

_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "tools": convert.tools,
    "tool_resources": convert.tool_resources,
    "response_format": convert.response_format,
    "tool_choice": convert.tool_choice,
    "truncation_strategy": convert.truncation_strategy,
    "messages": convert.message_inputs,
    "additional_messages": lambda values: convert.message_inputs(values, "additional_messages"),
    "attachments": convert.attachments,
    "thread": convert.thread_input,
    "tool_outputs": convert.tool_outputs,
    "metadata": dict,
    "content": convert.content_fields,
}

# Arguments that fill a oneof: their converter returns the oneof's fields.
_ONEOF_ARGUMENTS = frozenset({"content"})


def build(request_type: type[R], fields: Mapping[str, Any]) -> R:
    """A `request_type` with `fields` converted and set; None values stay unset."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        converter = _CONVERTERS.get(name)
        converted = converter(value) if converter is not None else value
        if name in _ONEOF_ARGUMENTS:
            values.update(converted)
        else:
            values[name] = converted
    try:
        return request_type(**values)
    except (TypeError, ValueError) as error:
        # Protobuf names the field and the bad value; say which request it was.
        raise ValueError(f"{request_type.__name__}: {error}") from None


def build_update(
    request_type: type[R], identity: Mapping[str, str], changes: Mapping[str, Any]
) -> R:
    """An Update request for the object named by `identity` that changes exactly `changes`."""
    request = build(request_type, {**identity, **changes})
    if changes:
        request.update_mask.paths.extend(changes)  # type: ignore[attr-defined]
    return request
