"""Building the chat-completions request for one model call of a run."""

from __future__ import annotations

from typing import Any

from assistants_grpc.domain.models import (
    Message,
    MessageStatus,
    Run,
    RunStep,
    StepStatus,
)
from assistants_grpc.ports.model_provider import ChatRequest

# A rough count (four characters a token) is enough to hold a prompt under a budget; the
# provider's own usage figures are what the run reports.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return estimate_tokens_of_length(len(text))


def estimate_tokens_of_length(characters: int) -> int:
    return (characters + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _content(message: Message) -> str | list[dict[str, Any]]:
    images = [p for p in message.content if p.type in ("image_url", "image_file")]
    if not images or message.role != "user":
        return message.text()
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if part.type == "text":
            parts.append({"type": "text", "text": part.text or ""})
        elif part.type == "image_url" and part.image_url is not None:
            image: dict[str, Any] = {"url": part.image_url.url}
            if part.image_url.detail:
                image["detail"] = part.image_url.detail
            parts.append({"type": "image_url", "image_url": image})
        # Image files need a files store this service does not have; they are left out.
    return parts


def _turn(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": _content(message)}


def build_messages(
    run: Run, history: list[Message], steps: list[RunStep]
) -> tuple[list[dict[str, Any]], int]:
    """The chat messages for the next model call and their estimated prompt tokens.

    The thread's messages from before the run come first, under the run's truncation
    strategy; then what the run itself did, step by step: the messages it wrote and, for each
    completed tool-call step, the assistant's calls followed by the submitted outputs.
    """
    usable = [m for m in history if m.status != MessageStatus.INCOMPLETE and m.content]
    run_written = {s.message_id for s in steps if s.message_id}
    before_run = [m for m in usable if m.id not in run_written]
    strategy = run.truncation_strategy
    if strategy.type == "last_messages" and strategy.last_messages:
        before_run = before_run[-strategy.last_messages :]

    ordered = [_turn(m) for m in before_run]
    by_id = {m.id: m for m in usable}
    # A message of the run right before its tool calls came from the same model answer (a
    # text-only answer would have ended the run): they go back as one assistant turn.
    answer_text: dict[str, Any] | None = None
    for step in steps:
        if step.type == "message_creation":
            written = by_id.get(step.message_id or "")
            answer_text = None
            if written is not None:
                answer_text = _turn(written)
                ordered.append(answer_text)
            continue
        if step.status == StepStatus.COMPLETED and step.tool_calls:
            calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in step.tool_calls
            ]
            if answer_text is not None and isinstance(answer_text["content"], str):
                answer_text["tool_calls"] = calls
            else:
                ordered.append({"role": "assistant", "content": None, "tool_calls": calls})
            ordered.extend(
                {"role": "tool", "tool_call_id": call.id, "content": call.output or ""}
                for call in step.tool_calls
            )
        answer_text = None

    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": run.instructions}] if run.instructions else []
    )
    messages.extend(ordered)
    tokens = sum(MESSAGE_OVERHEAD_TOKENS + estimate_tokens(_text_of(m)) for m in messages)
    return messages, tokens


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(str(p.get("text", "")) for p in content)
    else:
        text = ""
    for call in message.get("tool_calls") or ():
        text += call["function"]["name"] + call["function"]["arguments"]
    return text


def fit_to_budget(
    messages: list[dict[str, Any]], tokens: int, budget: int | None
) -> tuple[list[dict[str, Any]], int]:
    """Drops the oldest non-system turns until the estimate fits `budget` (the `auto`
    truncation). A tool result is never separated from the call it answers, and the last turn
    (with its tool results) is always kept: a prompt without it asks the model nothing, so
    when even that does not fit, the estimate stays over the budget and the run cannot go on."""
    if budget is None or tokens <= budget:
        return messages, tokens
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns: list[list[dict[str, Any]]] = []
    for message in messages[len(system) :]:
        if message["role"] == "tool" and turns:
            turns[-1].append(message)
        else:
            turns.append([message])
    while len(turns) > 1 and tokens > budget:
        for dropped in turns.pop(0):
            tokens -= MESSAGE_OVERHEAD_TOKENS + estimate_tokens(_text_of(dropped))
    return system + [message for turn in turns for message in turn], tokens


def function_tools(run: Run) -> list[dict[str, Any]]:
    """The run's function tools in chat-completions form (other tool types need server-side
    tools this service does not run, so the model is not offered them)."""
    tools: list[dict[str, Any]] = []
    for tool in run.tools:
        if tool.type != "function" or tool.function is None:
            continue
        fn: dict[str, Any] = {"name": tool.function.name}
        if tool.function.description:
            fn["description"] = tool.function.description
        fn["parameters"] = tool.function.parameters or {"type": "object", "properties": {}}
        if tool.function.strict is not None:
            fn["strict"] = tool.function.strict
        tools.append({"type": "function", "function": fn})
    return tools


def tool_choice(run: Run, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    if not tools:
        return None
    choice = run.tool_choice
    if choice.is_mode:
        return choice.type
    if choice.type == "function" and choice.function_name:
        return {"type": "function", "function": {"name": choice.function_name}}
    return "auto"


def response_format(run: Run) -> dict[str, Any] | None:
    fmt = run.response_format
    if fmt is None or fmt.type in ("auto", "text"):
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        schema: dict[str, Any] = {"name": fmt.json_schema.name}
        if fmt.json_schema.description:
            schema["description"] = fmt.json_schema.description
        if fmt.json_schema.schema is not None:
            schema["schema"] = fmt.json_schema.schema
        if fmt.json_schema.strict is not None:
            schema["strict"] = fmt.json_schema.strict
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt.type}


def chat_request(
    run: Run,
    upstream_model: str,
    messages: list[dict[str, Any]],
    max_completion_tokens: int | None,
    timeout_seconds: float | None,
) -> ChatRequest:
    tools = function_tools(run)
    return ChatRequest(
        model=upstream_model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice(run, tools),
        parallel_tool_calls=run.parallel_tool_calls if tools else None,
        temperature=run.temperature,
        top_p=run.top_p,
        max_completion_tokens=max_completion_tokens,
        response_format=response_format(run),
        reasoning_effort=run.reasoning_effort,
        timeout_seconds=timeout_seconds,
    )
