"""Conversion of runs, run steps and stream events between proto and domain."""

from __future__ import annotations

from typing import Any

from assistants.v1 import (
    message_pb2,
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
)
from assistants_grpc.domain.validation import Violations
from assistants_grpc.transport.convert_common import (
    optional_bool,
    optional_float,
    optional_int,
    optional_str,
    response_format_from_proto,
    response_format_to_proto,
    tool_choice_from_proto,
    tool_choice_to_proto,
    tool_resources_from_proto,
    tool_to_proto,
    tools_from_proto,
    truncation_from_proto,
    truncation_to_proto,
    usage_to_proto,
)
from assistants_grpc.transport.convert_resources import (
    message_to_proto,
    new_messages_from_proto,
    thread_to_proto,
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


def run_to_proto(r: Run) -> run_pb2.Run:
    ended = r.is_terminal
    return run_pb2.Run(
        id=r.id,
        object="thread.run",
        created_at=r.created_at,
        thread_id=r.thread_id,
        assistant_id=r.assistant_id,
        status=r.status,
        required_action=run_pb2.RequiredAction(
            type="submit_tool_outputs",
            submit_tool_outputs=run_pb2.SubmitToolOutputsAction(
                tool_calls=[
                    run_pb2.RunToolCall(
                        id=call.id,
                        type="function",
                        function=run_pb2.FunctionCall(name=call.name, arguments=call.arguments),
                    )
                    for call in r.required_tool_calls
                ]
            ),
        )
        if r.required_tool_calls
        else None,
        last_error=run_pb2.RunError(code=r.last_error.code, message=r.last_error.message)
        if r.last_error
        else None,
        expires_at=r.expires_at,
        started_at=r.started_at,
        cancelled_at=r.cancelled_at,
        failed_at=r.failed_at,
        completed_at=r.completed_at,
        incomplete_details=run_pb2.RunIncompleteDetails(reason=r.incomplete_reason)
        if r.incomplete_reason
        else None,
        model=r.model,
        instructions=r.instructions,
        tools=[tool_to_proto(t) for t in r.tools],
        metadata=r.metadata,
        # As in OpenAI, usage is reported once the run has ended.
        usage=usage_to_proto(r.usage) if ended else None,
        temperature=r.temperature,
        top_p=r.top_p,
        max_prompt_tokens=r.max_prompt_tokens,
        max_completion_tokens=r.max_completion_tokens,
        truncation_strategy=truncation_to_proto(r.truncation_strategy),
        tool_choice=tool_choice_to_proto(r.tool_choice),
        parallel_tool_calls=r.parallel_tool_calls,
        response_format=response_format_to_proto(r.response_format),
        reasoning_effort=r.reasoning_effort,
    )


def _tool_call_to_proto(call: Any) -> run_step_pb2.ToolCall:
    return run_step_pb2.ToolCall(
        id=call.id,
        type="function",
        function=run_step_pb2.FunctionToolCall(
            name=call.name, arguments=call.arguments, output=call.output
        ),
    )


def step_to_proto(s: RunStep) -> run_step_pb2.RunStep:
    if s.type == "message_creation":
        details = run_step_pb2.StepDetails(
            type="message_creation",
            message_creation=run_step_pb2.MessageCreation(message_id=s.message_id or ""),
        )
    else:
        details = run_step_pb2.StepDetails(
            type="tool_calls", tool_calls=[_tool_call_to_proto(c) for c in s.tool_calls]
        )
    return run_step_pb2.RunStep(
        id=s.id,
        object="thread.run.step",
        created_at=s.created_at,
        assistant_id=s.assistant_id,
        thread_id=s.thread_id,
        run_id=s.run_id,
        type=s.type,
        status=s.status,
        step_details=details,
        last_error=run_step_pb2.RunStepError(code=s.last_error.code, message=s.last_error.message)
        if s.last_error
        else None,
        expired_at=s.expired_at,
        cancelled_at=s.cancelled_at,
        failed_at=s.failed_at,
        completed_at=s.completed_at,
        metadata=s.metadata,
        # As in OpenAI, usage is reported once the step has ended (a tool-call step knows its
        # usage while it waits for outputs, but is still in progress).
        usage=usage_to_proto(s.usage) if s.status != StepStatus.IN_PROGRESS else None,
    )


def _message_delta_to_proto(d: MessageDelta) -> message_pb2.MessageDelta:
    return message_pb2.MessageDelta(
        id=d.id,
        object="thread.message.delta",
        delta=message_pb2.MessageDeltaBody(
            role=d.role,
            content=[
                message_pb2.MessageContentDelta(
                    index=part.index,
                    type="text",
                    text=message_pb2.TextDelta(value=part.text or ""),
                )
                for part in d.content
            ],
        ),
    )


def _step_delta_to_proto(d: RunStepDelta) -> run_step_pb2.RunStepDelta:
    if d.step_type == "message_creation":
        details = run_step_pb2.StepDetailsDelta(
            type="message_creation",
            message_creation=run_step_pb2.MessageCreation(message_id=d.message_id or ""),
        )
    else:
        details = run_step_pb2.StepDetailsDelta(
            type="tool_calls",
            tool_calls=[
                run_step_pb2.ToolCallDelta(
                    index=call.index,
                    id=call.id,
                    type="function",
                    function=run_step_pb2.FunctionToolCallDelta(
                        name=call.name, arguments=call.arguments, output=call.output
                    ),
                )
                for call in d.tool_calls
            ],
        )
    return run_step_pb2.RunStepDelta(
        id=d.id,
        object="thread.run.step.delta",
        delta=run_step_pb2.RunStepDeltaBody(step_details=details),
    )


def event_to_proto(e: RunEvent) -> run_stream_event_pb2.RunStreamEvent:
    data = e.data
    event = run_stream_event_pb2.RunStreamEvent(
        sequence_number=e.sequence_number, event=e.event, run_id=e.run_id
    )
    if isinstance(data, MessageDelta):
        event.message_delta.CopyFrom(_message_delta_to_proto(data))
    elif isinstance(data, RunStepDelta):
        event.run_step_delta.CopyFrom(_step_delta_to_proto(data))
    elif isinstance(data, Run):
        event.run.CopyFrom(run_to_proto(data))
    elif isinstance(data, RunStep):
        event.run_step.CopyFrom(step_to_proto(data))
    elif isinstance(data, Message):
        event.message.CopyFrom(message_to_proto(data))
    elif isinstance(data, Thread):
        event.thread.CopyFrom(thread_to_proto(data))
    elif isinstance(data, StreamError):
        event.error.CopyFrom(
            run_stream_event_pb2.StreamError(
                code=data.code, message=data.message, param=data.param, type=data.type
            )
        )
    elif isinstance(data, StreamDone):
        event.done.CopyFrom(run_stream_event_pb2.StreamDone(data=data.data))
    return event
