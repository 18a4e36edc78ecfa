"""The async client: the sync client's methods as coroutines, on a `grpc.aio` channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self, TypeVar, Unpack

import grpc

from assistants.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    message_pb2,
    message_service_pb2,
    message_service_pb2_grpc,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    run_step_pb2,
    run_stream_event_pb2,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)

from .base import BaseClient
from .calls import CallOptions, split_call_options
from .errors import error_from_rpc
from .pagination import DEFAULT_PAGE_SIZE, aiterate
from .params import (
    AddMessageParams,
    CreateAssistantParams,
    CreateThreadParams,
    IterMessagesParams,
    IterParams,
    MessagePageParams,
    PageParams,
    RunParams,
    SubscribeParams,
    ThreadAndRunParams,
    ToolOutputsParams,
    UpdateAssistantParams,
    UpdateMetadataParams,
    UpdateThreadParams,
)
from .requests import build, build_update
from .streams import AsyncEventCall, AsyncRunStream

Request = TypeVar("Request")
Response = TypeVar("Response")


class AsyncAssistantsClient(BaseClient):
    """An async client of the Assistants service, on a `grpc.aio` channel.

    The same methods as `AssistantsClient`, as coroutines; the `iter_*` methods return async
    iterators and the `*_stream` methods return an `AsyncRunStream`. For LiteLLM users the
    functions of its Assistants API are here under their names too: `aget_assistants`,
    `acreate_thread`, `aget_thread`, `a_add_message`, `aget_messages`, `arun_thread` and
    `arun_thread_stream`.

    Create it inside the event loop that uses it, and use it as an async context manager or
    call `await close()`::

        async with AsyncAssistantsClient("127.0.0.1:50051", api_key="...") as client:
            assistant = (await client.get_assistants()).data[0]
    """

    def _connect(self) -> None:
        self._channel = self._channel_settings.async_channel()
        self._assistants = assistant_service_pb2_grpc.AssistantServiceStub(self._channel)
        self._threads = thread_service_pb2_grpc.ThreadServiceStub(self._channel)
        self._messages = message_service_pb2_grpc.MessageServiceStub(self._channel)
        self._runs = run_service_pb2_grpc.RunServiceStub(self._channel)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- assistants ---------------------------------------------------------------------------

    async def create_assistant(
        self, **params: Unpack[CreateAssistantParams]
    ) -> assistant_pb2.Assistant:
        """Creates an assistant. `model` is required; `name`, `description`, `instructions`,
        `tools`, `tool_resources`, `metadata`, `temperature`, `top_p`, `response_format` and
        `reasoning_effort` are optional, as in OpenAI."""
        fields, options = split_call_options(params)
        request = build(assistant_service_pb2.CreateAssistantRequest, fields)
        return (await self._unary(self._assistants.CreateAssistant, request, options)).assistant

    async def get_assistant(
        self, assistant_id: str, **options: Unpack[CallOptions]
    ) -> assistant_pb2.Assistant:
        """Returns one assistant."""
        request = assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id)
        return (await self._unary(self._assistants.GetAssistant, request, options)).assistant

    async def get_assistants(
        self, **params: Unpack[PageParams]
    ) -> assistant_service_pb2.ListAssistantsResponse:
        """One page of assistants, newest first unless `order="asc"`; see `iter_assistants` for
        all of them."""
        fields, options = split_call_options(params)
        request = build(assistant_service_pb2.ListAssistantsRequest, fields)
        return await self._unary(self._assistants.ListAssistants, request, options)

    def iter_assistants(
        self, **params: Unpack[IterParams]
    ) -> AsyncIterator[assistant_pb2.Assistant]:
        """Every assistant, fetching pages as the iteration goes."""
        fields, options = split_call_options(params)
        page_size = fields.pop("page_size", DEFAULT_PAGE_SIZE)
        after = fields.pop("after", "")

        async def fetch(cursor: str) -> assistant_service_pb2.ListAssistantsResponse:
            request = build(
                assistant_service_pb2.ListAssistantsRequest,
                {**fields, "limit": page_size, "after": cursor},
            )
            return await self._unary(self._assistants.ListAssistants, request, options)

        return aiterate(fetch, after)

    async def update_assistant(
        self, assistant_id: str, **params: Unpack[UpdateAssistantParams]
    ) -> assistant_pb2.Assistant:
        """Changes the fields given and nothing else; a field given as None is cleared."""
        changes, options = split_call_options(params)
        request = build_update(
            assistant_service_pb2.UpdateAssistantRequest, {"assistant_id": assistant_id}, changes
        )
        return (await self._unary(self._assistants.UpdateAssistant, request, options)).assistant

    async def delete_assistant(
        self, assistant_id: str, **options: Unpack[CallOptions]
    ) -> assistant_service_pb2.DeleteAssistantResponse:
        """Deletes an assistant; its past runs keep their copy of its settings."""
        request = assistant_service_pb2.DeleteAssistantRequest(assistant_id=assistant_id)
        return await self._unary(self._assistants.DeleteAssistant, request, options)

    # --- threads ------------------------------------------------------------------------------

    async def create_thread(self, **params: Unpack[CreateThreadParams]) -> thread_pb2.Thread:
        """Creates a thread, optionally with its first `messages`
        (`[{"role": "user", "content": "Hi"}]`), `tool_resources` and `metadata`."""
        fields, options = split_call_options(params)
        request = build(thread_service_pb2.CreateThreadRequest, fields)
        return (await self._unary(self._threads.CreateThread, request, options)).thread

    async def get_thread(self, thread_id: str, **options: Unpack[CallOptions]) -> thread_pb2.Thread:
        """Returns one thread."""
        request = thread_service_pb2.GetThreadRequest(thread_id=thread_id)
        return (await self._unary(self._threads.GetThread, request, options)).thread

    async def update_thread(
        self, thread_id: str, **params: Unpack[UpdateThreadParams]
    ) -> thread_pb2.Thread:
        """Changes `metadata` and/or `tool_resources`; a field given as None is cleared."""
        changes, options = split_call_options(params)
        request = build_update(
            thread_service_pb2.UpdateThreadRequest, {"thread_id": thread_id}, changes
        )
        return (await self._unary(self._threads.UpdateThread, request, options)).thread

    async def delete_thread(
        self, thread_id: str, **options: Unpack[CallOptions]
    ) -> thread_service_pb2.DeleteThreadResponse:
        """Deletes a thread with its messages, runs and steps; refused while a run is active."""
        request = thread_service_pb2.DeleteThreadRequest(thread_id=thread_id)
        return await self._unary(self._threads.DeleteThread, request, options)

    # --- messages -----------------------------------------------------------------------------

    async def add_message(
        self, thread_id: str, **params: Unpack[AddMessageParams]
    ) -> message_pb2.Message:
        """Adds a message to a thread: `role` and `content` (a string, or a list of parts such
        as `{"type": "text", "text": ...}` and `{"type": "image_url", "image_url": {...}}`),
        optionally `attachments` and `metadata`."""
        fields, options = split_call_options(params)
        request = build(
            message_service_pb2.CreateMessageRequest, {"thread_id": thread_id, **fields}
        )
        return (await self._unary(self._messages.CreateMessage, request, options)).message

    async def get_message(
        self, thread_id: str, message_id: str, **options: Unpack[CallOptions]
    ) -> message_pb2.Message:
        """Returns one message."""
        request = message_service_pb2.GetMessageRequest(thread_id=thread_id, message_id=message_id)
        return (await self._unary(self._messages.GetMessage, request, options)).message

    async def get_messages(
        self, thread_id: str, **params: Unpack[MessagePageParams]
    ) -> message_service_pb2.ListMessagesResponse:
        """One page of a thread's messages, newest first unless `order="asc"`; `run_id` keeps
        those one run wrote. See `iter_messages` for all of them."""
        fields, options = split_call_options(params)
        request = build(message_service_pb2.ListMessagesRequest, {"thread_id": thread_id, **fields})
        return await self._unary(self._messages.ListMessages, request, options)

    def iter_messages(
        self, thread_id: str, **params: Unpack[IterMessagesParams]
    ) -> AsyncIterator[message_pb2.Message]:
        """Every message of a thread, fetching pages as the iteration goes."""
        fields, options = split_call_options(params)
        page_size = fields.pop("page_size", DEFAULT_PAGE_SIZE)
        after = fields.pop("after", "")

        async def fetch(cursor: str) -> message_service_pb2.ListMessagesResponse:
            request = build(
                message_service_pb2.ListMessagesRequest,
                {**fields, "thread_id": thread_id, "limit": page_size, "after": cursor},
            )
            return await self._unary(self._messages.ListMessages, request, options)

        return aiterate(fetch, after)

    async def update_message(
        self, thread_id: str, message_id: str, **params: Unpack[UpdateMetadataParams]
    ) -> message_pb2.Message:
        """Replaces a message's `metadata` (None clears it)."""
        changes, options = split_call_options(params)
        request = build_update(
            message_service_pb2.UpdateMessageRequest,
            {"thread_id": thread_id, "message_id": message_id},
            changes,
        )
        return (await self._unary(self._messages.UpdateMessage, request, options)).message

    async def delete_message(
        self, thread_id: str, message_id: str, **options: Unpack[CallOptions]
    ) -> message_service_pb2.DeleteMessageResponse:
        """Deletes a message."""
        request = message_service_pb2.DeleteMessageRequest(
            thread_id=thread_id, message_id=message_id
        )
        return await self._unary(self._messages.DeleteMessage, request, options)

    # --- runs ---------------------------------------------------------------------------------

    async def create_run(self, thread_id: str, **params: Unpack[RunParams]) -> run_pb2.Run:
        """Creates a run of `assistant_id` on the thread and returns it at once, `queued`.
        Optional overrides as in OpenAI: `model`, `instructions`, `additional_instructions`,
        `additional_messages`, `tools`, `tool_choice`, `response_format`, token budgets..."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.CreateRunRequest, {"thread_id": thread_id, **fields})
        return (await self._unary(self._runs.CreateRun, request, options)).run

    async def run_thread(self, thread_id: str, **params: Unpack[RunParams]) -> run_pb2.Run:
        """Runs `assistant_id` on the thread and returns the run once it ended or waits for tool
        outputs (`requires_action`). Takes the arguments of `create_run`.

        The server answers before the call's `timeout` with the run as it is then, still going
        when it needed longer; give a larger `timeout` for long runs."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.RunThreadRequest, {"thread_id": thread_id, **fields})
        return (await self._unary(self._runs.RunThread, request, options)).run

    def run_thread_stream(self, thread_id: str, **params: Unpack[RunParams]) -> AsyncRunStream:
        """Runs `assistant_id` on the thread and streams the run's events until it ended or
        waits for tool outputs. Takes the arguments of `create_run`."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.RunThreadStreamRequest, {"thread_id": thread_id, **fields})
        return self._stream(self._runs.RunThreadStream, request, options)

    async def create_thread_and_run(self, **params: Unpack[ThreadAndRunParams]) -> run_pb2.Run:
        """Creates a thread (`thread={"messages": [...]}`) and a run of `assistant_id` on it, and
        returns the run at once, `queued`; its `thread_id` names the new thread."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.CreateThreadAndRunRequest, fields)
        return (await self._unary(self._runs.CreateThreadAndRun, request, options)).run

    def create_thread_and_run_stream(self, **params: Unpack[ThreadAndRunParams]) -> AsyncRunStream:
        """Creates a thread and a run on it, and streams the events from `thread.created`."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.CreateThreadAndRunStreamRequest, fields)
        return self._stream(self._runs.CreateThreadAndRunStream, request, options)

    async def get_run(
        self, thread_id: str, run_id: str, **options: Unpack[CallOptions]
    ) -> run_pb2.Run:
        """Returns one run."""
        request = run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id)
        return (await self._unary(self._runs.GetRun, request, options)).run

    async def get_runs(
        self, thread_id: str, **params: Unpack[PageParams]
    ) -> run_service_pb2.ListRunsResponse:
        """One page of a thread's runs, newest first unless `order="asc"`."""
        fields, options = split_call_options(params)
        request = build(run_service_pb2.ListRunsRequest, {"thread_id": thread_id, **fields})
        return await self._unary(self._runs.ListRuns, request, options)

    def iter_runs(self, thread_id: str, **params: Unpack[IterParams]) -> AsyncIterator[run_pb2.Run]:
        """Every run of a thread, fetching pages as the iteration goes."""
        fields, options = split_call_options(params)
        page_size = fields.pop("page_size", DEFAULT_PAGE_SIZE)
        after = fields.pop("after", "")

        async def fetch(cursor: str) -> run_service_pb2.ListRunsResponse:
            request = build(
                run_service_pb2.ListRunsRequest,
                {**fields, "thread_id": thread_id, "limit": page_size, "after": cursor},
            )
            return await self._unary(self._runs.ListRuns, request, options)

        return aiterate(fetch, after)

    async def update_run(
        self, thread_id: str, run_id: str, **params: Unpack[UpdateMetadataParams]
    ) -> run_pb2.Run:
        """Replaces a run's `metadata` (None clears it)."""
        changes, options = split_call_options(params)
        request = build_update(
            run_service_pb2.UpdateRunRequest, {"thread_id": thread_id, "run_id": run_id}, changes
        )
        return (await self._unary(self._runs.UpdateRun, request, options)).run

    async def cancel_run(
        self, thread_id: str, run_id: str, **options: Unpack[CallOptions]
    ) -> run_pb2.Run:
        """Cancels a run; it is `cancelling`, and soon `cancelled`."""
        request = run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id)
        return (await self._unary(self._runs.CancelRun, request, options)).run

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, **params: Unpack[ToolOutputsParams]
    ) -> run_pb2.Run:
        """Answers the tool calls a run waits for, all at once:
        `tool_outputs=[{"tool_call_id": call.id, "output": "..."}]`. Returns the run, `queued`
        to go on."""
        fields, options = split_call_options(params)
        request = build(
            run_service_pb2.SubmitToolOutputsRequest,
            {"thread_id": thread_id, "run_id": run_id, **fields},
        )
        return (await self._unary(self._runs.SubmitToolOutputs, request, options)).run

    def submit_tool_outputs_stream(
        self, thread_id: str, run_id: str, **params: Unpack[ToolOutputsParams]
    ) -> AsyncRunStream:
        """Answers the tool calls a run waits for and streams its events from there."""
        fields, options = split_call_options(params)
        request = build(
            run_service_pb2.SubmitToolOutputsStreamRequest,
            {"thread_id": thread_id, "run_id": run_id, **fields},
        )
        return self._stream(self._runs.SubmitToolOutputsStream, request, options)

    def subscribe_run(
        self, thread_id: str, run_id: str, **params: Unpack[SubscribeParams]
    ) -> AsyncRunStream:
        """Replays a run's events after `after_sequence_number` (default 0: all), then follows
        it live until it ended or waits for tool outputs."""
        fields, options = split_call_options(params)
        request = build(
            run_service_pb2.SubscribeRunRequest,
            {"thread_id": thread_id, "run_id": run_id, **fields},
        )
        return self._stream(self._runs.SubscribeRun, request, options)

    async def get_run_step(
        self, thread_id: str, run_id: str, step_id: str, **options: Unpack[CallOptions]
    ) -> run_step_pb2.RunStep:
        """Returns one run step."""
        request = run_service_pb2.GetRunStepRequest(
            thread_id=thread_id, run_id=run_id, step_id=step_id
        )
        return (await self._unary(self._runs.GetRunStep, request, options)).run_step

    async def get_run_steps(
        self, thread_id: str, run_id: str, **params: Unpack[PageParams]
    ) -> run_service_pb2.ListRunStepsResponse:
        """One page of a run's steps, newest first unless `order="asc"`."""
        fields, options = split_call_options(params)
        request = build(
            run_service_pb2.ListRunStepsRequest,
            {"thread_id": thread_id, "run_id": run_id, **fields},
        )
        return await self._unary(self._runs.ListRunSteps, request, options)

    def iter_run_steps(
        self, thread_id: str, run_id: str, **params: Unpack[IterParams]
    ) -> AsyncIterator[run_step_pb2.RunStep]:
        """Every step of a run, fetching pages as the iteration goes."""
        fields, options = split_call_options(params)
        page_size = fields.pop("page_size", DEFAULT_PAGE_SIZE)
        after = fields.pop("after", "")

        async def fetch(cursor: str) -> run_service_pb2.ListRunStepsResponse:
            request = build(
                run_service_pb2.ListRunStepsRequest,
                {
                    **fields,
                    "thread_id": thread_id,
                    "run_id": run_id,
                    "limit": page_size,
                    "after": cursor,
                },
            )
            return await self._unary(self._runs.ListRunSteps, request, options)

        return aiterate(fetch, after)

    # --- LiteLLM's names ----------------------------------------------------------------------

    aget_assistants = get_assistants
    acreate_thread = create_thread
    aget_thread = get_thread
    a_add_message = add_message
    aget_messages = get_messages
    arun_thread = run_thread
    arun_thread_stream = run_thread_stream

    # --- plumbing -----------------------------------------------------------------------------

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        options: CallOptions,
    ) -> Response:
        try:
            return await method(
                request,
                timeout=self._call_defaults.unary_timeout(options),
                metadata=self._call_defaults.metadata(options),
            )
        except grpc.RpcError as error:
            raise error_from_rpc(error) from error

    def _stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Request, run_stream_event_pb2.RunStreamEvent],
        request: Request,
        options: CallOptions,
    ) -> AsyncRunStream:
        timeout = self._call_defaults.stream_timeout(options)
        metadata = self._call_defaults.metadata(options)

        def resubscribe(run_id: str, after_sequence_number: int) -> AsyncEventCall:
            return self._runs.SubscribeRun(
                run_service_pb2.SubscribeRunRequest(
                    run_id=run_id, after_sequence_number=after_sequence_number
                ),
                timeout=timeout,
                metadata=metadata,
            )

        call = method(request, timeout=timeout, metadata=metadata)
        return AsyncRunStream(call, resubscribe, max_reconnects=self._max_stream_reconnects)
