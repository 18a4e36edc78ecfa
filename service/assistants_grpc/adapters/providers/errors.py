"""The error raised for a bad model list or script, with messages that point at the bad field."""

from __future__ import annotations

import pydantic
from pydantic_core import ErrorDetails


class ProviderConfigError(ValueError):
    """A model list or a scripted-provider script is invalid; the message says where and why."""


def describe_validation_error(
    source: str, error: pydantic.ValidationError, *, hidden: frozenset[str] = frozenset()
) -> str:
    """One line per problem, each naming the field path, e.g. `models[2].timeout_seconds: ...`.

    `hidden` are path parts that name no field the user wrote, such as the tags pydantic puts into
    the path of a discriminated union's member.
    """
    lines = [f"{source} is invalid:"]
    for problem in error.errors(include_url=False, include_input=False):
        lines.append(f"  {_location(problem['loc'], hidden)}: {_message(problem)}")
    return "\n".join(lines)


def _location(loc: tuple[int | str, ...], hidden: frozenset[str]) -> str:
    text = ""
    for position, part in enumerate(loc):
        if (
            isinstance(part, str)
            and part in hidden
            and position
            and isinstance(loc[position - 1], int)
        ):
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text or "(document)"


def _message(problem: ErrorDetails) -> str:
    message = str(problem["msg"])
    # Pydantic prefixes messages of our own validators; the prefix says nothing to a user.
    return message.removeprefix("Value error, ")
