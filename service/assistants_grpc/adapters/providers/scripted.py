"""A model provider that plays back a script: no model, no network, fully predictable.

Tests use it, demos use it, and users point their own client tests at a service whose models are
scripted. A script is a YAML (or JSON) document::

    token_delay_ms: 20            # pause between streamed pieces (default 0)
    chunking: words               # words (default) | characters | whole
    when_exhausted: cycle         # cycle (default) | repeat_last
    turns:
      # A turn with `when` is a rule: it answers every call it matches, and is never used up.
      - when: {after_tool_output: true}
        reply: "It is {last_tool_output} in Paris."
      - when: {last_user_message_contains: "weather"}
        tool_calls:
          - name: get_weather
            arguments: {city: Paris}
      # Turns without `when` are played in order, one per call that no rule matched.
      - reply: "Hello! You said: {last_user_message}"
      - reply: "This answer runs into the token cap"
        finish_reason: length
      - error: rate_limit         # or {kind: server_error, message: "..."}
      - hang: true                # sleep until the call is cancelled; {seconds: 2} gives up
      - reply: "Late but fine."
        first_token_delay_ms: 500
        usage: {prompt_tokens: 12, completion_tokens: 4}

A bare list at the top level is read as `turns`.

Which turn plays: the first rule (in file order) whose conditions all hold; otherwise the next turn
of the sequence. When the sequence is used up it starts again from its first turn (`cycle`), or
keeps playing its last one (`repeat_last`). The position is shared by every call that reaches this
provider, so concurrent conversations take turns from the same sequence: use rules when several
conversations must each see the same thing. With no sequence turns at all, an unmatched call is
answered by echoing the last user message.

Turn fields:
- `reply`: text, streamed in pieces (`chunking`, `token_delay_ms`); `{last_user_message}` and
  `{last_tool_output}` are replaced by those texts.
- `tool_calls`: function calls (several means parallel calls), each `name`, `arguments` (a mapping
  or a JSON string) and optionally `id`; arguments are streamed in `argument_chunks` pieces.
- `call_offered_tool`: `true` calls the function the request offers (the one `tool_choice` names,
  else the first), with no arguments.
- `error`: `rate_limit`, `server_error` or `invalid_prompt`, with an optional `message`; raised
  after the reply text, if any, so a reply plus an error is a failure in mid-stream.
- `hang`: `true` sleeps until cancelled; `{seconds: N}` sleeps N seconds, then plays the rest of the
  turn, or fails with `server_error` as an upstream timeout would when there is nothing else.
- `first_token_delay_ms`: latency before the first piece.
- `finish_reason`: `stop`, `length`, `tool_calls` or `content_filter`; by default `tool_calls` when
  there are calls, else `stop`. A request's `max_completion_tokens` cuts the reply at that many
  pieces with `length`, as a real model would.
- `usage`: reported token counts; by default estimated at about four characters per token.

Conditions of `when` (all given must hold): `last_user_message_contains` (case-insensitive),
`last_user_message_matches` (a regular expression), `after_tool_output` (the last message is a tool
result, or with false: is not), `tools_offered` (the request offers a function the model may call)
and `model` (a shell-style pattern on the requested model name).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import re
import secrets
import string
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from assistants_grpc.adapters.providers.errors import (
    ProviderConfigError,
    describe_validation_error,
)
from assistants_grpc.ports.model_provider import (
    ChatEvent,
    ChatRequest,
    Finish,
    FinishReason,
    ProviderError,
    ProviderErrorKind,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
)

Chunking = Literal["words", "characters", "whole"]
NonNegative = Annotated[float, Field(ge=0)]

_WORD_PIECES = re.compile(r"\s*\S+|\s+")
_ERROR_KINDS = {
    "rate_limit": ProviderErrorKind.RATE_LIMIT,
    "server_error": ProviderErrorKind.SERVER_ERROR,
    "invalid_prompt": ProviderErrorKind.INVALID_PROMPT,
}
_DEFAULT_ERROR_MESSAGES = {
    "rate_limit": "The scripted model is rate limiting requests.",
    "server_error": "The scripted model failed.",
    "invalid_prompt": "The scripted model rejected the prompt.",
}
_CALL_ID_ALPHABET = string.ascii_letters + string.digits


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    """Conditions on a call; a turn with them answers every call for which all hold."""

    last_user_message_contains: str | None = None
    last_user_message_matches: str | None = None
    after_tool_output: bool | None = None
    tools_offered: bool | None = None
    model: str | None = None

    @pydantic.field_validator("last_user_message_matches")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return pattern

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> When:
        conditions = (
            self.last_user_message_contains,
            self.last_user_message_matches,
            self.after_tool_output,
            self.tools_offered,
            self.model,
        )
        if all(condition is None for condition in conditions):
            raise ValueError("`when` needs at least one condition")
        return self

    def matches(self, request: ChatRequest) -> bool:
        if self.model is not None and not fnmatch.fnmatchcase(request.model, self.model):
            return False
        if self.tools_offered is not None and bool(offered_tool(request)) != self.tools_offered:
            return False
        if self.after_tool_output is not None:
            after_tool = bool(request.messages) and request.messages[-1].get("role") == "tool"
            if after_tool != self.after_tool_output:
                return False
        if self.last_user_message_contains is not None or self.last_user_message_matches:
            text = last_user_message(request.messages)
            needle = self.last_user_message_contains
            if needle is not None and needle.casefold() not in text.casefold():
                return False
            pattern = self.last_user_message_matches
            if pattern is not None and re.search(pattern, text) is None:
                return False
        return True


class ScriptedToolCall(_Strict):
    name: Annotated[str, Field(min_length=1)]
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None

    @pydantic.field_validator("arguments")
    @classmethod
    def _json_text(cls, arguments: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(arguments, str):
            try:
                json.loads(arguments)
            except ValueError:
                raise ValueError("a string of arguments must be JSON text") from None
        return arguments

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(", ", ": "))


class ScriptedError(_Strict):
    kind: Literal["rate_limit", "server_error", "invalid_prompt"]
    message: str | None = None


class Hang(_Strict):
    seconds: NonNegative | None = None
    """None hangs until the call is cancelled."""


class ScriptedUsage(_Strict):
    prompt_tokens: Annotated[int, Field(ge=0)]
    completion_tokens: Annotated[int, Field(ge=0)]


class Turn(_Strict):
    """One scripted answer."""

    when: When | None = None
    reply: str | None = None
    tool_calls: list[ScriptedToolCall] | None = None
    call_offered_tool: bool = False
    error: ScriptedError | None = None
    hang: Hang | None = None
    first_token_delay_ms: NonNegative = 0.0
    token_delay_ms: NonNegative | None = None
    chunking: Chunking | None = None
    argument_chunks: Annotated[int, Field(ge=1)] = 3
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None
    usage: ScriptedUsage | None = None

    @pydantic.field_validator("error", mode="before")
    @classmethod
    def _error_shorthand(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    @pydantic.field_validator("hang", mode="before")
    @classmethod
    def _hang_shorthand(cls, value: object) -> object:
        if value is True:
            return {}
        if value is False:
            return None
        if isinstance(value, int | float):
            return {"seconds": value}
        return value

    @pydantic.model_validator(mode="after")
    def _says_something(self) -> Turn:
        if self.tool_calls is not None and not self.tool_calls:
            raise ValueError("tool_calls must not be empty")
        calls = bool(self.tool_calls) or self.call_offered_tool
        if self.reply is None and not calls and self.error is None and self.hang is None:
            raise ValueError("a turn needs a reply, tool_calls, an error or a hang")
        if self.hang is not None and self.hang.seconds is None and self.answers():
            raise ValueError("a turn that hangs until cancelled cannot also answer")
        return self

    def answers(self) -> bool:
        """Whether the turn says anything (text, calls or an error) besides hanging."""
        return (
            self.reply is not None
            or bool(self.tool_calls)
            or self.call_offered_tool
            or self.error is not None
        )


class Script(_Strict):
    """A whole script: defaults for its turns, and the turns."""

    turns: Annotated[list[Turn], Field(min_length=1)]
    token_delay_ms: NonNegative = 0.0
    chunking: Chunking = "words"
    when_exhausted: Literal["cycle", "repeat_last"] = "cycle"

    @pydantic.model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: object) -> object:
        return {"turns": value} if isinstance(value, list) else value


DEFAULT_SCRIPT = Script(
    turns=[
        Turn(when=When(after_tool_output=True), reply="The tool returned: {last_tool_output}"),
        Turn(when=When(tools_offered=True), call_offered_tool=True),
        Turn(reply="You said: {last_user_message}"),
    ]
)
"""What a scripted model without a script file does: offered a function, it calls it (with no
arguments) and then reports what the function returned; otherwise it echoes the last user
message. That is enough to walk through a whole tool-calling conversation with no model."""


def offered_tool(request: ChatRequest) -> str | None:
    """The function a call may use: the one `tool_choice` names, else the first offered; none
    when no function is offered or `tool_choice` is `none`."""
    if not request.tools or request.tool_choice == "none":
        return None
    choice = request.tool_choice
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        if isinstance(name, str):
            return name
    function = request.tools[0].get("function", {})
    name = function.get("name")
    return name if isinstance(name, str) else None


def parse_script(text: str, *, source: str = "the script") -> Script:
    """Read a YAML or JSON script; raise ProviderConfigError naming `source` and the bad field."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ProviderConfigError(f"{source} is not valid YAML or JSON{where}") from None
    if document is None:
        raise ProviderConfigError(f"{source} is empty")
    try:
        return Script.model_validate(document)
    except pydantic.ValidationError as error:
        raise ProviderConfigError(describe_validation_error(source, error)) from None


def load_script(path: str | Path) -> Script:
    """Read a script file; raise ProviderConfigError when it is missing or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ProviderConfigError(
            f"the script file {str(path)!r} cannot be read: {error.strerror}"
        ) from None
    return parse_script(text, source=f"the script file {str(path)!r}")


class ScriptedProvider:
    """Plays a `Script`; see the module docstring for how a turn is chosen."""

    def __init__(self, script: Script | None = None, *, history: int = 100) -> None:
        """`history` bounds how many past requests `requests` keeps, for tests to inspect."""
        self._script = script or DEFAULT_SCRIPT
        self._rules = [turn for turn in self._script.turns if turn.when is not None]
        self._sequence = [turn for turn in self._script.turns if turn.when is None]
        self._cursor = 0
        self._calls = 0
        self._requests: deque[ChatRequest] = deque(maxlen=history)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedProvider:
        return cls(load_script(path))

    @classmethod
    def from_text(cls, text: str, *, source: str = "the script") -> ScriptedProvider:
        return cls(parse_script(text, source=source))

    @property
    def script(self) -> Script:
        return self._script

    @property
    def calls(self) -> int:
        """How many calls were made, whatever they answered."""
        return self._calls

    @property
    def requests(self) -> list[ChatRequest]:
        return list(self._requests)

    async def aclose(self) -> None:
        """Nothing to release; present so that every provider can be closed alike."""

    def choose(self, request: ChatRequest) -> Turn:
        """The turn for `request`, moving the sequence on when it is taken from there."""
        for rule in self._rules:
            if rule.when is not None and rule.when.matches(request):
                return rule
        if not self._sequence:
            return _ECHO_TURN
        position = self._cursor
        self._cursor += 1
        if position >= len(self._sequence):
            if self._script.when_exhausted == "cycle":
                position %= len(self._sequence)
            else:
                position = len(self._sequence) - 1
        return self._sequence[position]

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        self._calls += 1
        self._requests.append(request)
        turn = self.choose(request)
        script = self._script
        delay_ms = turn.token_delay_ms if turn.token_delay_ms is not None else script.token_delay_ms
        delay = delay_ms / 1000

        if turn.first_token_delay_ms:
            await asyncio.sleep(turn.first_token_delay_ms / 1000)
        if turn.hang is not None:
            if turn.hang.seconds is None:
                # Only cancelling the call ends this, as with an upstream that never answers.
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(turn.hang.seconds)
            if not turn.answers():
                raise ProviderError(
                    ProviderErrorKind.SERVER_ERROR, "The scripted model did not answer in time."
                )

        text = _fill(turn.reply or "", request.messages)
        pieces = split_text(text, turn.chunking or script.chunking)
        cap = request.max_completion_tokens
        capped = False
        if cap is not None and len(pieces) > cap:
            capped = True
            pieces = pieces[:cap]
            text = "".join(pieces)
        paced = False
        for piece in pieces:
            if paced and delay:
                await asyncio.sleep(delay)
            paced = True
            yield TextDelta(piece)

        if turn.error is not None:
            message = turn.error.message or _DEFAULT_ERROR_MESSAGES[turn.error.kind]
            raise ProviderError(_ERROR_KINDS[turn.error.kind], message)

        arguments_chars = 0
        calls = [] if capped else list(turn.tool_calls or [])
        if turn.call_offered_tool and not capped:
            name = offered_tool(request)
            if name is not None:
                calls.append(ScriptedToolCall(name=name))
        for index, call in enumerate(calls):
            arguments = call.arguments_json()
            arguments_chars += len(arguments)
            if paced and delay:
                await asyncio.sleep(delay)
            paced = True
            yield ToolCallDelta(index=index, call_id=call.id or _call_id(), name=call.name)
            for part in _split_evenly(arguments, turn.argument_chunks):
                if delay:
                    await asyncio.sleep(delay)
                yield ToolCallDelta(index=index, arguments=part)

        if turn.finish_reason is not None:
            reason = FinishReason(turn.finish_reason)
        elif capped:
            reason = FinishReason.LENGTH
        else:
            reason = FinishReason.TOOL_CALLS if calls else FinishReason.STOP
        yield Finish(reason)

        if turn.usage is not None:
            yield TokenUsage(turn.usage.prompt_tokens, turn.usage.completion_tokens)
        else:
            yield TokenUsage(
                prompt_tokens=max(1, _estimate_tokens(_prompt_chars(request.messages))),
                completion_tokens=_estimate_tokens(len(text) + arguments_chars),
            )


_ECHO_TURN = Turn(reply="You said: {last_user_message}")


def split_text(text: str, chunking: Chunking) -> list[str]:
    """Split text into streamed pieces that join back to exactly `text`."""
    if not text:
        return []
    if chunking == "whole":
        return [text]
    if chunking == "characters":
        return list(text)
    return _WORD_PIECES.findall(text)


def last_user_message(messages: Iterable[dict[str, Any]]) -> str:
    """The text of the last user message, or "" when there is none."""
    for message in reversed(list(messages)):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _fill(template: str, messages: list[dict[str, Any]]) -> str:
    if "{" not in template:
        return template
    text = template
    if "{last_user_message}" in text:
        text = text.replace("{last_user_message}", last_user_message(messages))
    if "{last_tool_output}" in text:
        last = messages[-1] if messages else {}
        output = _content_text(last.get("content")) if last.get("role") == "tool" else ""
        text = text.replace("{last_tool_output}", output)
    return text


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _prompt_chars(messages: Iterable[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += len(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                function = call.get("function")
                if isinstance(function, dict):
                    total += len(str(function.get("arguments", "")))
    return total


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _split_evenly(text: str, parts: int) -> list[str]:
    if len(text) <= 1 or parts <= 1:
        return [text]
    step = math.ceil(len(text) / parts)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _call_id() -> str:
    return "call_" + "".join(secrets.choice(_CALL_ID_ALPHABET) for _ in range(24))
