"""What a run's events add up to: the run, its messages with their deltas applied, its steps.

No I/O here: `RunStreamState.apply` takes one `RunStreamEvent` at a time, from any stream (a live
run, SubmitToolOutputsStream, SubscribeRun), and keeps snapshots the way OpenAI's SDK does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from assistants.v1 import (
    message_pb2,
    run_pb2,
    run_step_pb2,
    run_stream_event_pb2,
    thread_pb2,
)

Snapshot = TypeVar(
    "Snapshot", message_pb2.Message, run_pb2.Run, run_step_pb2.RunStep, thread_pb2.Thread
)

FINISHED_MESSAGE_EVENTS = frozenset({"thread.message.completed", "thread.message.incomplete"})


def message_text(message: message_pb2.Message) -> str:
    """The text of a message: its text parts joined, without images or refusals."""
    return "".join(part.text.value for part in message.content if part.WhichOneof("part") == "text")


def text_deltas(event: run_stream_event_pb2.RunStreamEvent) -> Iterator[str]:
    """The pieces of text a `thread.message.delta` event appends, in order; nothing for any
    other event."""
    if event.WhichOneof("data") != "message_delta":
        return
    for part in event.message_delta.delta.content:
        if part.WhichOneof("part") == "text" and part.text.value:
            yield part.text.value


class RunStreamState:
    """The snapshots built from a run's events so far."""

    def __init__(self) -> None:
        self.run: run_pb2.Run | None = None
        """The run as the latest `thread.run.*` event showed it."""
        self.thread: thread_pb2.Thread | None = None
        """The thread, when the stream created it (`thread.created`)."""
        self.run_id = ""
        self.last_sequence_number = 0
        """Of the last event applied: where SubscribeRun resumes."""
        self.done = False
        """Whether the `done` event arrived: the run ended or waits for tool outputs."""
        self._messages: dict[str, message_pb2.Message] = {}
        self._finished: list[str] = []
        self._steps: dict[str, run_step_pb2.RunStep] = {}

    @property
    def messages(self) -> list[message_pb2.Message]:
        """Every message the run wrote, in the order they were created, with the deltas so far
        applied."""
        return list(self._messages.values())

    @property
    def finished_messages(self) -> list[message_pb2.Message]:
        """The messages that were completed (or ended incomplete), in that order."""
        return [self._messages[message_id] for message_id in self._finished]

    @property
    def steps(self) -> list[run_step_pb2.RunStep]:
        """The run's steps, in the order they were created, with the deltas so far applied."""
        return list(self._steps.values())

    @property
    def required_tool_calls(self) -> list[run_pb2.RunToolCall]:
        """The function calls the run waits for, when it is `requires_action`."""
        if self.run is None or self.run.status != "requires_action":
            return []
        return list(self.run.required_action.submit_tool_outputs.tool_calls)

    def apply(self, event: run_stream_event_pb2.RunStreamEvent) -> None:
        self.last_sequence_number = max(self.last_sequence_number, event.sequence_number)
        if event.run_id:
            self.run_id = event.run_id
        kind = event.WhichOneof("data")
        if kind == "run":
            self.run = _copy(event.run)
            self.run_id = event.run.id or self.run_id
        elif kind == "thread":
            self.thread = _copy(event.thread)
        elif kind == "message":
            self._messages[event.message.id] = _copy(event.message)
            if event.event in FINISHED_MESSAGE_EVENTS and event.message.id not in self._finished:
                self._finished.append(event.message.id)
        elif kind == "message_delta":
            delta = event.message_delta
            snapshot = self._messages.setdefault(delta.id, message_pb2.Message(id=delta.id))
            apply_message_delta(snapshot, delta.delta)
        elif kind == "run_step":
            self._steps[event.run_step.id] = _copy(event.run_step)
        elif kind == "run_step_delta":
            step_delta = event.run_step_delta
            step = self._steps.setdefault(step_delta.id, run_step_pb2.RunStep(id=step_delta.id))
            apply_step_delta(step, step_delta.delta)
        elif kind == "done":
            self.done = True


def apply_message_delta(message: message_pb2.Message, delta: message_pb2.MessageDeltaBody) -> None:
    """Appends a delta to a message snapshot, part by part at the parts' indexes."""
    if delta.HasField("role"):
        message.role = delta.role
    for change in delta.content:
        while len(message.content) <= change.index:
            message.content.add()
        part = message.content[change.index]
        kind = change.WhichOneof("part")
        part.type = change.type or kind or part.type
        if kind == "text":
            part.text.value += change.text.value
            part.text.annotations.extend(change.text.annotations)
        elif kind == "image_file":
            part.image_file.CopyFrom(change.image_file)
        elif kind == "image_url":
            part.image_url.CopyFrom(change.image_url)
        elif kind == "refusal":
            part.refusal += change.refusal


def apply_step_delta(step: run_step_pb2.RunStep, delta: run_step_pb2.RunStepDeltaBody) -> None:
    """Appends a delta to a step snapshot: tool call ids, names, argument text and outputs."""
    details = delta.step_details
    if details.type:
        step.step_details.type = details.type
    if details.HasField("message_creation"):
        step.step_details.message_creation.CopyFrom(details.message_creation)
    calls = step.step_details.tool_calls
    for change in details.tool_calls:
        while len(calls) <= change.index:
            calls.add()
        call = calls[change.index]
        if change.HasField("id"):
            call.id = change.id
        kind = change.WhichOneof("call")
        call.type = change.type or kind or call.type
        if kind == "function":
            function = change.function
            if function.HasField("name"):
                call.function.name = function.name
            if function.HasField("arguments"):
                call.function.arguments += function.arguments
            if function.HasField("output"):
                call.function.output = function.output
        elif kind == "code_interpreter":
            call.code_interpreter.input += change.code_interpreter.input
            call.code_interpreter.outputs.extend(change.code_interpreter.outputs)
        elif kind == "file_search":
            call.file_search.MergeFrom(change.file_search)


def _copy(message: Snapshot) -> Snapshot:
    # Snapshots are changed in place by later deltas; the event keeps what it carried.
    copied = type(message)()
    copied.CopyFrom(message)
    return copied
