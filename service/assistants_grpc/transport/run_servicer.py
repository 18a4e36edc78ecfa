"""Servicer of RunService, including its server-streaming RPCs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from assistants.v1 import run_service_pb2 as pb
from assistants.v1 import run_service_pb2_grpc
from assistants.v1.run_stream_event_pb2 import RunStreamEvent
from assistants_grpc.application.runs import Runs, StartedRun, ToolOutput
from assistants_grpc.domain.errors import InvalidArgument, ResourceExhausted
from assistants_grpc.domain.validation import Violations
from assistants_grpc.transport.call_context import call_context
from assistants_grpc.transport.convert_common import list_response, tool_resources_from_proto
from assistants_grpc.transport.convert_resources import new_messages_from_proto
from assistants_grpc.transport.convert_runs import (
    event_to_proto,
    run_options_from_proto,
    run_proto_fields,
    run_to_proto,
    step_proto_fields,
    step_to_proto,
)
from assistants_grpc.transport.errors import translate_errors
from assistants_grpc.transport.update_mask import metadata_update

Context = grpc.aio.ServicerContext[Any, Any]


def caller_deadline(context: Context) -> float | None:
    """The caller's deadline as Unix time, for runs whose model calls must not outlive it."""
    remaining = context.time_remaining()
    return None if remaining is None else time.time() + remaining


class StreamGate:
    """Bounds the event streams open at once, and ends them all when the server drains."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.open_streams = 0
        self.stop = asyncio.Event()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.open_streams >= self._limit:
            raise ResourceExhausted(
                f"Too many open run streams (limit {self._limit}); retry later.",
                reason="TOO_MANY_STREAMS",
            )
        self.open_streams += 1
        try:
            yield
        finally:
            self.open_streams -= 1


class RunServicer(run_service_pb2_grpc.RunServiceServicer):
    def __init__(self, runs: Runs, gate: StreamGate) -> None:
        self._runs = runs
        self._gate = gate

    async def _events(
        self, begin: Callable[[], Awaitable[tuple[str, int]]]
    ) -> AsyncIterator[RunStreamEvent]:
        """Takes a stream slot, then calls `begin` (which starts or finds the run, and says
        after which sequence number to stream), then streams: a caller refused a slot has
        started nothing, so it can simply retry."""
        async with self._gate.slot():
            run_id, after = await begin()
            async for event in self._runs.follow(run_id, after, stop=self._gate.stop):
                yield event_to_proto(event)

    # --- starting runs ----------------------------------------------------------------------

    @translate_errors
    async def CreateRun(
        self, request: pb.CreateRunRequest, context: Context
    ) -> pb.CreateRunResponse:
        v = Violations()
        options = run_options_from_proto(v, request)
        v.raise_if_any()
        started = await self._runs.create(call_context(context), request.thread_id, options)
        return pb.CreateRunResponse(run=run_to_proto(started.run))

    @translate_errors
    async def RunThread(
        self, request: pb.RunThreadRequest, context: Context
    ) -> pb.RunThreadResponse:
        v = Violations()
        options = run_options_from_proto(v, request)
        v.raise_if_any()
        options.deadline_at = caller_deadline(context)
        ctx = call_context(context)
        started = await self._runs.create(ctx, request.thread_id, options)
        # A drain answers with the run as it is, as a near deadline does: the run was created,
        # so failing the call (UNAVAILABLE, retried by clients) would start a second one.
        run = await self._runs.wait_for_stream_end(
            ctx, started.run.id, started.events[-1].sequence_number, stop=self._gate.stop
        )
        return pb.RunThreadResponse(run=run_to_proto(run))

    @translate_errors
    async def RunThreadStream(
        self, request: pb.RunThreadStreamRequest, context: Context
    ) -> AsyncIterator[RunStreamEvent]:
        v = Violations()
        options = run_options_from_proto(v, request)
        v.raise_if_any()
        options.deadline_at = caller_deadline(context)

        async def begin() -> tuple[str, int]:
            started = await self._runs.create(call_context(context), request.thread_id, options)
            return started.run.id, 0

        async for event in self._events(begin):
            yield event

    async def _create_thread_and_run(
        self, request: Any, context: Context, *, waits: bool
    ) -> StartedRun:
        v = Violations()
        options = run_options_from_proto(v, request)
        if waits:
            options.deadline_at = caller_deadline(context)
        thread = request.thread
        messages = new_messages_from_proto(v, "thread.messages", thread.messages)
        v.raise_if_any()
        return await self._runs.create_thread_and_run(
            call_context(context),
            messages,
            tool_resources_from_proto(thread.tool_resources)
            if thread.HasField("tool_resources")
            else None,
            dict(thread.metadata),
            options,
        )

    @translate_errors
    async def CreateThreadAndRun(
        self, request: pb.CreateThreadAndRunRequest, context: Context
    ) -> pb.CreateThreadAndRunResponse:
        started = await self._create_thread_and_run(request, context, waits=False)
        return pb.CreateThreadAndRunResponse(run=run_to_proto(started.run))

    @translate_errors
    async def CreateThreadAndRunStream(
        self, request: pb.CreateThreadAndRunStreamRequest, context: Context
    ) -> AsyncIterator[RunStreamEvent]:
        async def begin() -> tuple[str, int]:
            started = await self._create_thread_and_run(request, context, waits=True)
            return started.run.id, 0

        async for event in self._events(begin):
            yield event

    # --- reading and moving runs ------------------------------------------------------------

    @translate_errors
    async def GetRun(self, request: pb.GetRunRequest, context: Context) -> pb.GetRunResponse:
        run = await self._runs.get(call_context(context), request.thread_id, request.run_id)
        return pb.GetRunResponse(run=run_to_proto(run))

    @translate_errors
    async def ListRuns(self, request: pb.ListRunsRequest, context: Context) -> pb.ListRunsResponse:
        page = await self._runs.list_runs(
            call_context(context),
            request.thread_id,
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        return list_response(pb.ListRunsResponse, page, run_proto_fields)

    @translate_errors
    async def UpdateRun(
        self, request: pb.UpdateRunRequest, context: Context
    ) -> pb.UpdateRunResponse:
        run = await self._runs.update_metadata(
            call_context(context),
            request.thread_id,
            request.run_id,
            metadata_update(request),
        )
        return pb.UpdateRunResponse(run=run_to_proto(run))

    @translate_errors
    async def CancelRun(
        self, request: pb.CancelRunRequest, context: Context
    ) -> pb.CancelRunResponse:
        run = await self._runs.cancel(call_context(context), request.thread_id, request.run_id)
        return pb.CancelRunResponse(run=run_to_proto(run))

    @staticmethod
    def _outputs(request: Any) -> list[ToolOutput]:
        return [
            ToolOutput(tool_call_id=o.tool_call_id, output=o.output) for o in request.tool_outputs
        ]

    @translate_errors
    async def SubmitToolOutputs(
        self, request: pb.SubmitToolOutputsRequest, context: Context
    ) -> pb.SubmitToolOutputsResponse:
        run, _ = await self._runs.submit_tool_outputs(
            call_context(context), request.thread_id, request.run_id, self._outputs(request)
        )
        return pb.SubmitToolOutputsResponse(run=run_to_proto(run))

    @translate_errors
    async def SubmitToolOutputsStream(
        self, request: pb.SubmitToolOutputsStreamRequest, context: Context
    ) -> AsyncIterator[RunStreamEvent]:
        async def begin() -> tuple[str, int]:
            run, before = await self._runs.submit_tool_outputs(
                call_context(context),
                request.thread_id,
                request.run_id,
                self._outputs(request),
                deadline_at=caller_deadline(context),
            )
            return run.id, before

        async for event in self._events(begin):
            yield event

    @translate_errors
    async def SubscribeRun(
        self, request: pb.SubscribeRunRequest, context: Context
    ) -> AsyncIterator[RunStreamEvent]:
        if request.after_sequence_number < 0:
            raise InvalidArgument.field("after_sequence_number", "must not be negative")

        async def begin() -> tuple[str, int]:
            run = await self._runs.check_visible(
                call_context(context), request.thread_id, request.run_id
            )
            return run.id, request.after_sequence_number

        async for event in self._events(begin):
            yield event

    @translate_errors
    async def GetRunStep(
        self, request: pb.GetRunStepRequest, context: Context
    ) -> pb.GetRunStepResponse:
        step = await self._runs.get_step(
            call_context(context), request.thread_id, request.run_id, request.step_id
        )
        return pb.GetRunStepResponse(run_step=step_to_proto(step))

    @translate_errors
    async def ListRunSteps(
        self, request: pb.ListRunStepsRequest, context: Context
    ) -> pb.ListRunStepsResponse:
        page = await self._runs.list_steps(
            call_context(context),
            request.thread_id,
            request.run_id,
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        return list_response(pb.ListRunStepsResponse, page, step_proto_fields)
