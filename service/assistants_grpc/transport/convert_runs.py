"""Conversion of runs, run steps and stream events between proto and domain."""

from __future__ import annotations

from typing import Any

from assistants.v1 import (
    run_pb2,
    run_step_pb2,
    run_stream_event_pb2,
)
from assistants_grpc.application.runs import RunOptions
from assistants_grpc.domain.models import (
    Message,
    MessageDelta,
    Run,
    RunEvent,
    RunStep,
    RunStepDelta,
    StepStatus,
    StreamDone,
    StreamError,
    Thread,
    ToolCallRecord,
)
from assistants_grpc.domain.validation import Violations
from assistants_grpc.transport.convert_common import (
    optional_bool,
    optional_float,
    optional_int,
    optional_str,
    response_format_from_proto,
    response_format_to_proto,
    tool_choice_fields,
    tool_choice_from_proto,
    tool_resources_from_proto,
    tool_to_proto,
    tools_from_proto,
    truncation_fields,
    truncation_from_proto,
    usage_fields,
)
from assistants_grpc.transport.convert_resources import (
    compact,
    message_proto_fields,
    new_messages_from_proto,
    thread_proto_fields,
)


def run_options_from_proto(v: Violations, request: Any) -> RunOptions:
    """RunOptions from any of the run-starting requests (they share field names)."""
    descriptor = request.DESCRIPTOR.fields_by_name
    return RunOptions(
        assistant_id=request.assistant_id,
        model=optional_str(request, "model"),
        instructions=optional_str(request, "instructions"),
        additional_instructions=optional_str(request, "additional_instructions")
        if "additional_instructions" in descriptor
        else None,
        additional_messages=new_messages_from_proto(
            v, "additional_messages", request.additional_messages
        )
        if "additional_messages" in descriptor
        else [],
        tools=tools_from_proto(v, "tools", request.tools) if len(request.tools) else None,
        tool_resources=tool_resources_from_proto(request.tool_resources)
        if "tool_resources" in descriptor and request.HasField("tool_resources")
        else None,
        metadata=dict(request.metadata),
        temperature=optional_float(request, "temperature"),
        top_p=optional_float(request, "top_p"),
        max_prompt_tokens=optional_int(request, "max_prompt_tokens"),
        max_completion_tokens=optional_int(request, "max_completion_tokens"),
        truncation_strategy=truncation_from_proto(request.truncation_strategy)
        if request.HasField("truncation_strategy")
        else None,
        tool_choice=tool_choice_from_proto(v, "tool_choice", request.tool_choice)
        if request.HasField("tool_choice")
        else None,
        parallel_tool_calls=optional_bool(request, "parallel_tool_calls"),
        response_format=response_format_from_proto(v, "response_format", request.response_format)
        if request.HasField("response_format")
        else None,
        reasoning_effort=optional_str(request, "reasoning_effort"),
    )


def run_proto_fields(r: Run) -> dict[str, Any]:
    fields = compact(
        id=r.id,
        object="thread.run",
        created_at=r.created_at,
        thread_id=r.thread_id,
        assistant_id=r.assistant_id,
        status=r.status,
        expires_at=r.expires_at,
        started_at=r.started_at,
        cancelled_at=r.cancelled_at,
        failed_at=r.failed_at,
        completed_at=r.completed_at,
        model=r.model,
        instructions=r.instructions,
        temperature=r.temperature,
        top_p=r.top_p,
        max_prompt_tokens=r.max_prompt_tokens,
        max_completion_tokens=r.max_completion_tokens,
        truncation_strategy=truncation_fields(r.truncation_strategy),
        tool_choice=tool_choice_fields(r.tool_choice),
        parallel_tool_calls=r.parallel_tool_calls,
        response_format=response_format_to_proto(r.response_format),
        reasoning_effort=r.reasoning_effort,
    )
    if r.required_tool_calls:
        fields["required_action"] = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in r.required_tool_calls
                ]
            },
        }
    if r.last_error:
        fields["last_error"] = {"code": r.last_error.code, "message": r.last_error.message}
    if r.incomplete_reason:
        fields["incomplete_details"] = {"reason": r.incomplete_reason}
    if r.tools:
        fields["tools"] = [tool_to_proto(t) for t in r.tools]
    if r.metadata:
        fields["metadata"] = r.metadata
    # As in OpenAI, usage is reported once the run has ended.
    if r.is_terminal and r.usage is not None:
        fields["usage"] = usage_fields(r.usage)
    return fields


def run_to_proto(r: Run) -> run_pb2.Run:
    return run_pb2.Run(**run_proto_fields(r))


def _tool_call_fields(call: ToolCallRecord) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": compact(name=call.name, arguments=call.arguments, output=call.output),
    }


def step_proto_fields(s: RunStep) -> dict[str, Any]:
    if s.type == "message_creation":
        details: dict[str, Any] = {
            "type": "message_creation",
            "message_creation": {"message_id": s.message_id or ""},
        }
    else:
        details = {"type": "tool_calls", "tool_calls": [_tool_call_fields(c) for c in s.tool_calls]}
    fields = compact(
        id=s.id,
        object="thread.run.step",
        created_at=s.created_at,
        assistant_id=s.assistant_id,
        thread_id=s.thread_id,
        run_id=s.run_id,
        type=s.type,
        status=s.status,
        step_details=details,
        expired_at=s.expired_at,
        cancelled_at=s.cancelled_at,
        failed_at=s.failed_at,
        completed_at=s.completed_at,
    )
    if s.last_error:
        fields["last_error"] = {"code": s.last_error.code, "message": s.last_error.message}
    if s.metadata:
        fields["metadata"] = s.metadata
    # As in OpenAI, usage is reported once the step has ended (a tool-call step knows its
    # usage while it waits for outputs, but is still in progress).
    if s.usage is not None and s.status != StepStatus.IN_PROGRESS:
        fields["usage"] = usage_fields(s.usage)
    return fields


def step_to_proto(s: RunStep) -> run_step_pb2.RunStep:
    return run_step_pb2.RunStep(**step_proto_fields(s))


def _message_delta_fields(d: MessageDelta) -> dict[str, Any]:
    body: dict[str, Any] = {
        "content": [
            {"index": part.index, "type": "text", "text": {"value": part.text or ""}}
            for part in d.content
        ]
    }
    if d.role is not None:
        body["role"] = d.role
    return {"id": d.id, "object": "thread.message.delta", "delta": body}


def _step_delta_fields(d: RunStepDelta) -> dict[str, Any]:
    if d.step_type == "message_creation":
        details: dict[str, Any] = {
            "type": "message_creation",
            "message_creation": {"message_id": d.message_id or ""},
        }
    else:
        details = {
            "type": "tool_calls",
            "tool_calls": [
                compact(
                    index=call.index,
                    id=call.id,
                    type="function",
                    function=compact(name=call.name, arguments=call.arguments, output=call.output),
                )
                for call in d.tool_calls
            ],
        }
    return {"id": d.id, "object": "thread.run.step.delta", "delta": {"step_details": details}}


def _payload(data: object) -> tuple[str, dict[str, Any]]:
    """The RunStreamEvent oneof field and its arguments for an event's payload."""
    if isinstance(data, MessageDelta):
        return "message_delta", _message_delta_fields(data)
    if isinstance(data, RunStepDelta):
        return "run_step_delta", _step_delta_fields(data)
    if isinstance(data, Run):
        return "run", run_proto_fields(data)
    if isinstance(data, RunStep):
        return "run_step", step_proto_fields(data)
    if isinstance(data, Message):
        return "message", message_proto_fields(data)
    if isinstance(data, Thread):
        return "thread", thread_proto_fields(data)
    if isinstance(data, StreamError):
        return "error", compact(
            code=data.code, message=data.message, param=data.param, type=data.type
        )
    if isinstance(data, StreamDone):
        return "done", {"data": data.data}
    raise TypeError(f"no stream payload for {type(data).__name__}")


def event_to_proto(e: RunEvent) -> run_stream_event_pb2.RunStreamEvent:
    field, payload = _payload(e.data)
    fields: dict[str, Any] = {
        "sequence_number": e.sequence_number,
        "event": e.event,
        "run_id": e.run_id,
        field: payload,
    }
    return run_stream_event_pb2.RunStreamEvent(**fields)
