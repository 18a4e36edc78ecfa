"""A run's event stream: iterate the events, or let the stream add them up.

`RunStream` (sync) and `AsyncRunStream` wrap the server-streaming calls (RunThreadStream,
CreateThreadAndRunStream, SubmitToolOutputsStream, SubscribeRun). Both:

- yield each `RunStreamEvent` once, in order, while keeping snapshots of the run, its messages
  and its steps (`snapshots.RunStreamState`);
- offer `text_deltas()` (the text as it is written), `until_done()` (the run once it ended or
  waits for tool outputs) and `final_messages()` (the messages the run completed);
- pick a run up again with SubscribeRun, after the last event seen, when the server asks for it
  while shutting down (an `error` event coded `resubscribe`) or when the connection drops in
  mid-stream: the run goes on without the stream, so nothing is lost or repeated;
- raise `RunStreamError` for any other `error` event, and the typed `AssistantsError` for a
  failed call;
- cancel the call when closed (leaving a `with` block early): the run itself goes on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Protocol, Self

import grpc

from assistants.v1 import message_pb2, run_pb2, run_step_pb2, run_stream_event_pb2, thread_pb2

from .errors import AssistantsError, RunStreamError, error_from_rpc
from .snapshots import RunStreamState, text_deltas

RunStreamEvent = run_stream_event_pb2.RunStreamEvent

RESUBSCRIBE_CODE = "resubscribe"


class EventCall(Protocol):
    """A sync server-streaming call of run events."""

    def __iter__(self) -> Iterator[RunStreamEvent]: ...
    def cancel(self) -> bool: ...


class AsyncEventCall(Protocol):
    """An async server-streaming call of run events."""

    def __aiter__(self) -> AsyncIterator[RunStreamEvent]: ...
    def cancel(self) -> bool: ...


Resubscribe = Callable[[str, int], EventCall]
"""Opens SubscribeRun for (run id, after sequence number)."""
AsyncResubscribe = Callable[[str, int], AsyncEventCall]


def _is_resubscribe(event: RunStreamEvent) -> bool:
    return event.WhichOneof("data") == "error" and event.error.code == RESUBSCRIBE_CODE


class _StreamView:
    """What both streams show of the events read so far."""

    def __init__(self, max_reconnects: int) -> None:
        self.state = RunStreamState()
        self._max_reconnects = max_reconnects
        self._reconnects = 0

    @property
    def current_run(self) -> run_pb2.Run | None:
        """The run as the latest run event showed it; None before the first."""
        return self.state.run

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def thread(self) -> thread_pb2.Thread | None:
        """The thread the stream created (CreateThreadAndRunStream); None otherwise."""
        return self.state.thread

    @property
    def last_sequence_number(self) -> int:
        """Of the last event read; pass it to `subscribe_run` to resume elsewhere."""
        return self.state.last_sequence_number

    @property
    def messages(self) -> list[message_pb2.Message]:
        """The run's messages so far, with their deltas applied."""
        return self.state.messages

    @property
    def steps(self) -> list[run_step_pb2.RunStep]:
        """The run's steps so far, with their deltas applied."""
        return self.state.steps

    @property
    def required_tool_calls(self) -> list[run_pb2.RunToolCall]:
        """The function calls to answer with `submit_tool_outputs`, when the run is
        `requires_action`; empty otherwise."""
        return self.state.required_tool_calls

    def _accept(self, event: RunStreamEvent) -> None:
        """Records an event about to be yielded; raises for an `error` event."""
        self.state.apply(event)
        self._reconnects = 0
        if event.WhichOneof("data") == "error":
            raise RunStreamError(event.error)

    def _may_reconnect(self, error: grpc.RpcError | None) -> bool:
        """Whether to pick the run up again with SubscribeRun: asked to by the server
        (`error` None) or after losing the connection in mid-stream, a bounded number of times
        in a row without an event in between."""
        if not self.state.run_id or self.state.done or self._reconnects >= self._max_reconnects:
            return False
        if error is not None:
            code = getattr(error, "code", None)
            if not callable(code) or code() != grpc.StatusCode.UNAVAILABLE:
                return False
        self._reconnects += 1
        return True

    def _final_run(self) -> run_pb2.Run:
        if self.state.run is None:
            raise AssistantsError("the run's event stream ended without a run event")
        return self.state.run


class RunStream(_StreamView):
    """A run's events, for the sync client.

    Use it as a context manager::

        with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            for text in stream.text_deltas():
                print(text, end="", flush=True)
            run = stream.until_done()
    """

    def __init__(self, call: EventCall, resubscribe: Resubscribe, *, max_reconnects: int) -> None:
        super().__init__(max_reconnects)
        self._call = call
        self._resubscribe = resubscribe
        self._events = self._read()

    def __iter__(self) -> Iterator[RunStreamEvent]:
        return self._events

    def __next__(self) -> RunStreamEvent:
        return next(self._events)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops reading: cancels the call. The run goes on; `subscribe_run` follows it again."""
        self._call.cancel()
        self._events.close()

    def text_deltas(self) -> Iterator[str]:
        """The text the run writes, piece by piece as it arrives, reading events as it goes."""
        for event in self._events:
            yield from text_deltas(event)

    def until_done(self) -> run_pb2.Run:
        """Reads the remaining events and returns the run as it ended, or as it waits for tool
        outputs (`requires_action`, see `required_tool_calls`)."""
        for _ in self._events:
            pass
        return self._final_run()

    def final_messages(self) -> list[message_pb2.Message]:
        """Reads the remaining events and returns the messages the run completed, in order."""
        self.until_done()
        return self.state.finished_messages

    def _read(self) -> Generator[RunStreamEvent, None, None]:
        while True:
            try:
                resubscribe_event: RunStreamEvent | None = None
                for event in self._call:
                    if _is_resubscribe(event):
                        resubscribe_event = event
                        break
                    self._accept(event)
                    yield event
                if resubscribe_event is None:
                    return
                if not self._may_reconnect(None):
                    raise RunStreamError(resubscribe_event.error)
            except grpc.RpcError as error:
                if not self._may_reconnect(error):
                    raise error_from_rpc(error) from error
            self._call = self._resubscribe(self.state.run_id, self.state.last_sequence_number)


class AsyncRunStream(_StreamView):
    """A run's events, for the async client.

    Use it as an async context manager::

        async with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            async for text in stream.text_deltas():
                print(text, end="", flush=True)
            run = await stream.until_done()

    Awaiting the stream returns it, so `stream = await client.arun_thread_stream(...)` works as
    LiteLLM's does.
    """

    def __init__(
        self, call: AsyncEventCall, resubscribe: AsyncResubscribe, *, max_reconnects: int
    ) -> None:
        super().__init__(max_reconnects)
        self._call = call
        self._resubscribe = resubscribe
        self._events = self._read()

    def __aiter__(self) -> AsyncIterator[RunStreamEvent]:
        return self._events

    async def __anext__(self) -> RunStreamEvent:
        return await anext(self._events)

    def __await__(self) -> Generator[Any, None, Self]:
        return self._itself().__await__()

    async def _itself(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops reading: cancels the call. The run goes on; `subscribe_run` follows it again."""
        self._call.cancel()
        await self._events.aclose()

    async def text_deltas(self) -> AsyncIterator[str]:
        """The text the run writes, piece by piece as it arrives, reading events as it goes."""
        async for event in self._events:
            for text in text_deltas(event):
                yield text

    async def until_done(self) -> run_pb2.Run:
        """Reads the remaining events and returns the run as it ended, or as it waits for tool
        outputs (`requires_action`, see `required_tool_calls`)."""
        async for _ in self._events:
            pass
        return self._final_run()

    async def final_messages(self) -> list[message_pb2.Message]:
        """Reads the remaining events and returns the messages the run completed, in order."""
        await self.until_done()
        return self.state.finished_messages

    async def _read(self) -> AsyncGenerator[RunStreamEvent, None]:
        while True:
            try:
                resubscribe_event: RunStreamEvent | None = None
                async for event in self._call:
                    if _is_resubscribe(event):
                        resubscribe_event = event
                        break
                    self._accept(event)
                    yield event
                if resubscribe_event is None:
                    return
                if not self._may_reconnect(None):
                    raise RunStreamError(resubscribe_event.error)
            except grpc.RpcError as error:
                if not self._may_reconnect(error):
                    raise error_from_rpc(error) from error
            self._call = self._resubscribe(self.state.run_id, self.state.last_sequence_number)
