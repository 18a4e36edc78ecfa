"""Use cases of runs as callers see them: create, read, cancel, submit tool outputs, stream.

Executing a run is the engine's job (`run_engine.py`); these use cases only move a run between
the states a caller controls, always under the run's row lock and always with the matching
events appended to its log in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from assistants_grpc.application import run_log
from assistants_grpc.application.context import CallContext, now
from assistants_grpc.application.messages import active_run_refusal
from assistants_grpc.application.paging import cursor_error, page_request
from assistants_grpc.application.threads import materialize_messages, new_thread
from assistants_grpc.domain import limits
from assistants_grpc.domain.errors import FailedPrecondition, NotFound
from assistants_grpc.domain.ids import IdPrefix, check_id, new_id
from assistants_grpc.domain.models import (
    EventPayload,
    NewMessage,
    ResponseFormat,
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    StepStatus,
    StreamError,
    Thread,
    Tool,
    ToolChoice,
    ToolResources,
    TruncationStrategy,
)
from assistants_grpc.domain.validation import (
    REASONING_EFFORTS,
    Violations,
    check_choice,
    check_length,
    check_metadata,
    check_model_name,
    check_new_messages,
    check_number,
    check_response_format,
    check_token_budget,
    check_tool_choice,
    check_tool_resources,
    check_tools,
    check_truncation,
)
from assistants_grpc.ports.event_hub import EventHub
from assistants_grpc.ports.model_provider import ModelRouter
from assistants_grpc.ports.storage import (
    ActiveRunExists,
    CursorNotFound,
    Page,
    Storage,
    StorageSession,
)

# How long a follower waits for a live event before it looks at storage again; covers events
# whose announcement was lost (another replica's notification, a dropped connection).
FOLLOW_POLL_SECONDS = 1.0
REPLAY_BATCH = 256
# The most a waiting call (RunThread) keeps back of its caller's deadline to send its answer.
MAX_ANSWER_MARGIN_SECONDS = 0.5


@dataclass
class RunOptions:
    """What a caller may set when starting a run; None means "the assistant's"."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    additional_messages: list[NewMessage] = field(default_factory=list)
    tools: list[Tool] | None = None
    tool_resources: ToolResources | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    deadline_at: float | None = None
    """Set by calls that wait for the run (RunThread, the streams): their deadline, which the
    run's model calls must not outlive."""


@dataclass(frozen=True, slots=True)
class ToolOutput:
    tool_call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class StartedRun:
    run: Run
    events: list[RunEvent]
    """The events the start wrote (`thread.created`, `thread.run.created`, `...queued`)."""


def check_run_options(v: Violations, options: RunOptions, router: ModelRouter) -> None:
    check_id(options.assistant_id, IdPrefix.ASSISTANT, "assistant_id")
    if options.model is not None:
        check_model_name(v, "model", options.model, required=True)
        if options.model and router.resolve(options.model) is None:
            v.add("model", f"'{options.model[:256]}' is not served by this deployment")
    check_length(v, "instructions", options.instructions, limits.MAX_INSTRUCTIONS_LENGTH)
    check_length(
        v,
        "additional_instructions",
        options.additional_instructions,
        limits.MAX_INSTRUCTIONS_LENGTH,
    )
    check_new_messages(v, "additional_messages", options.additional_messages)
    if options.tools is not None:
        check_tools(v, "tools", options.tools, limits.MAX_RUN_TOOLS)
    check_tool_resources(v, "tool_resources", options.tool_resources)
    check_metadata(v, "metadata", options.metadata)
    check_number(v, "temperature", options.temperature, 0, 2)
    check_number(v, "top_p", options.top_p, 0, 1)
    check_token_budget(v, "max_prompt_tokens", options.max_prompt_tokens)
    check_token_budget(v, "max_completion_tokens", options.max_completion_tokens)
    check_truncation(v, "truncation_strategy", options.truncation_strategy)
    check_response_format(v, "response_format", options.response_format)
    check_choice(v, "reasoning_effort", options.reasoning_effort, REASONING_EFFORTS)


def _instructions(base: str | None, additional: str | None) -> str:
    parts = [p for p in (base, additional) if p]
    return "\n\n".join(parts)


class Runs:
    def __init__(
        self,
        storage: Storage,
        router: ModelRouter,
        hub: EventHub,
        *,
        run_expiry_seconds: int,
    ) -> None:
        self._storage = storage
        self._router = router
        self._hub = hub
        self._expiry = run_expiry_seconds

    # --- starting runs ----------------------------------------------------------------------

    async def create(self, ctx: CallContext, thread_id: str, options: RunOptions) -> StartedRun:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        v = Violations()
        check_run_options(v, options, self._router)
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            thread = await tx.get_thread(ctx.project_id, thread_id, for_update=True)
            if thread is None:
                raise NotFound("thread", thread_id)
            started = await self._start(tx, ctx, thread, options, [])
        self._announce(started)
        return started

    async def create_thread_and_run(
        self,
        ctx: CallContext,
        messages: list[NewMessage],
        tool_resources: ToolResources | None,
        metadata: dict[str, str],
        options: RunOptions,
    ) -> StartedRun:
        v = Violations()
        check_run_options(v, options, self._router)
        v.raise_if_any()
        thread, first_messages = new_thread(
            ctx, messages, tool_resources, metadata, field_prefix="thread."
        )
        async with self._storage.transaction() as tx:
            await tx.insert_thread(thread)
            await tx.insert_messages(first_messages)
            started = await self._start(tx, ctx, thread, options, [("thread.created", thread)])
        self._announce(started)
        return started

    async def _start(
        self,
        tx: StorageSession,
        ctx: CallContext,
        thread: Thread,
        options: RunOptions,
        leading_events: list[tuple[str, EventPayload]],
    ) -> StartedRun:
        assistant = await tx.get_assistant(ctx.project_id, options.assistant_id)
        if assistant is None:
            raise NotFound("assistant", options.assistant_id)
        active = await tx.active_run(ctx.project_id, thread.id)
        if active is not None:
            raise active_run_refusal(thread.id, active.id, active.status)
        tools = options.tools if options.tools else assistant.tools
        v = Violations()
        check_tool_choice(v, "tool_choice", options.tool_choice, tools)
        v.raise_if_any()
        created_at = now()
        additional = materialize_messages(ctx, thread.id, options.additional_messages, created_at)
        await tx.insert_messages(additional)
        run = Run(
            id=new_id(IdPrefix.RUN),
            project_id=ctx.project_id,
            thread_id=thread.id,
            assistant_id=assistant.id,
            created_at=created_at,
            status=RunStatus.QUEUED,
            model=options.model or assistant.model,
            instructions=_instructions(
                options.instructions
                if options.instructions is not None
                else assistant.instructions,
                options.additional_instructions,
            ),
            tools=tools,
            tool_resources=options.tool_resources
            or thread.tool_resources
            or assistant.tool_resources,
            metadata=options.metadata,
            temperature=options.temperature
            if options.temperature is not None
            else assistant.temperature,
            top_p=options.top_p if options.top_p is not None else assistant.top_p,
            max_prompt_tokens=options.max_prompt_tokens,
            max_completion_tokens=options.max_completion_tokens,
            truncation_strategy=options.truncation_strategy or TruncationStrategy(),
            tool_choice=options.tool_choice or ToolChoice(type="auto"),
            parallel_tool_calls=True
            if options.parallel_tool_calls is None
            else options.parallel_tool_calls,
            response_format=options.response_format or assistant.response_format,
            reasoning_effort=options.reasoning_effort or assistant.reasoning_effort,
            expires_at=created_at + self._expiry,
            deadline_at=options.deadline_at,
        )
        try:
            await tx.insert_run(run)
        except ActiveRunExists:
            raise active_run_refusal(thread.id, "", "active") from None
        events = await run_log.append(
            tx,
            run.id,
            [*leading_events, ("thread.run.created", run), ("thread.run.queued", run)],
            last=0,  # a new run has no events yet
        )
        return StartedRun(run=run, events=events)

    def _announce(self, started: StartedRun) -> None:
        self._hub.publish(started.run.id, started.events)
        self._hub.announce_work()

    # --- reading ----------------------------------------------------------------------------

    async def _find_run(
        self,
        session: StorageSession,
        ctx: CallContext,
        thread_id: str,
        run_id: str,
        *,
        for_update: bool = False,
    ) -> Run:
        check_id(thread_id, IdPrefix.THREAD, "thread_id", required=False)
        check_id(run_id, IdPrefix.RUN, "run_id")
        run = await session.get_run(ctx.project_id, run_id, for_update=for_update)
        if run is None or (thread_id and run.thread_id != thread_id):
            raise NotFound("run", run_id)
        return run

    async def get(self, ctx: CallContext, thread_id: str, run_id: str) -> Run:
        async with self._storage.read() as session:
            return await self._find_run(session, ctx, thread_id, run_id)

    async def list_runs(
        self,
        ctx: CallContext,
        thread_id: str,
        limit: int | None,
        order: str,
        after: str,
        before: str,
    ) -> Page[Run]:
        check_id(thread_id, IdPrefix.THREAD, "thread_id")
        page = page_request(limit, order, after, before, IdPrefix.RUN)
        try:
            async with self._storage.read() as session:
                if await session.get_thread(ctx.project_id, thread_id) is None:
                    raise NotFound("thread", thread_id)
                return await session.list_runs(ctx.project_id, thread_id, page)
        except CursorNotFound as error:
            raise cursor_error(error) from None

    async def update_metadata(
        self, ctx: CallContext, thread_id: str, run_id: str, metadata: dict[str, str] | None
    ) -> Run:
        v = Violations()
        check_metadata(v, "metadata", metadata or {})
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            run = await self._find_run(tx, ctx, thread_id, run_id, for_update=True)
            if metadata is None:
                return run
            updated = msgspec.structs.replace(run, metadata=metadata)
            # Only the stored document changes; status and lease columns stay as they are.
            await tx.update_run(updated)
        return updated

    async def get_step(
        self, ctx: CallContext, thread_id: str, run_id: str, step_id: str
    ) -> RunStep:
        check_id(thread_id, IdPrefix.THREAD, "thread_id", required=False)
        check_id(run_id, IdPrefix.RUN, "run_id", required=False)
        check_id(step_id, IdPrefix.STEP, "step_id")
        async with self._storage.read() as session:
            step = await session.get_step(ctx.project_id, step_id)
        if (
            step is None
            or (thread_id and step.thread_id != thread_id)
            or (run_id and step.run_id != run_id)
        ):
            raise NotFound("run_step", step_id)
        return step

    async def list_steps(
        self,
        ctx: CallContext,
        thread_id: str,
        run_id: str,
        limit: int | None,
        order: str,
        after: str,
        before: str,
    ) -> Page[RunStep]:
        page = page_request(limit, order, after, before, IdPrefix.STEP)
        try:
            async with self._storage.read() as session:
                run = await self._find_run(session, ctx, thread_id, run_id)
                return await session.list_steps(ctx.project_id, run.id, page)
        except CursorNotFound as error:
            raise cursor_error(error) from None

    # --- moving runs ------------------------------------------------------------------------

    async def cancel(self, ctx: CallContext, thread_id: str, run_id: str) -> Run:
        async with self._storage.transaction() as tx:
            run = await self._find_run(tx, ctx, thread_id, run_id, for_update=True)
            if run.is_terminal:
                raise FailedPrecondition(
                    f"Cannot cancel run '{run_id}': it has already ended ({run.status}).",
                    reason="RUN_ALREADY_ENDED",
                )
            if run.status == RunStatus.CANCELLING:
                return run
            cancelling = msgspec.structs.replace(run, status=RunStatus.CANCELLING)
            items: list[tuple[str, EventPayload]] = [run_log.run_status_event(cancelling)]
            if run.status == RunStatus.IN_PROGRESS:
                # Its executor aborts the model call and finishes the cancel.
                await tx.update_run(cancelling)
                result = cancelling
            else:
                # Queued or waiting for tool outputs: nothing runs, so cancel right here.
                stamp = now()
                result = msgspec.structs.replace(
                    cancelling,
                    status=RunStatus.CANCELLED,
                    cancelled_at=stamp,
                    required_tool_calls=None,
                    expires_at=None,
                )
                for step in await tx.all_steps(run.id):
                    if step.status == StepStatus.IN_PROGRESS:
                        done = msgspec.structs.replace(
                            step, status=StepStatus.CANCELLED, cancelled_at=stamp
                        )
                        await tx.update_step(done)
                        items.append(("thread.run.step.cancelled", done))
                await tx.update_run(result, release_lease=True)
                items.extend(run_log.with_done(result))
            events = await run_log.append(tx, run.id, items)
        self._hub.publish(run.id, events)
        if result.status == RunStatus.CANCELLING:
            self._hub.request_cancel(run.id)
        return result

    async def submit_tool_outputs(
        self,
        ctx: CallContext,
        thread_id: str,
        run_id: str,
        outputs: list[ToolOutput],
        *,
        deadline_at: float | None = None,
    ) -> tuple[Run, int]:
        """Returns the run, queued again, and the sequence number before the submit's events
        (a stream of what follows starts after it). `deadline_at` replaces the run's deadline:
        the caller now waiting for it (if any) is the one that counts."""
        v = Violations()
        if not outputs:
            v.add("tool_outputs", "must have one output for each tool call")
        seen: set[str] = set()
        for i, item in enumerate(outputs):
            if not item.tool_call_id:
                v.add(f"tool_outputs[{i}].tool_call_id", "is required")
            elif item.tool_call_id in seen:
                v.add(f"tool_outputs[{i}].tool_call_id", f"repeats '{item.tool_call_id}'")
            seen.add(item.tool_call_id)
            check_length(v, f"tool_outputs[{i}].output", item.output, limits.MAX_TOOL_OUTPUT_LENGTH)
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            run = await self._find_run(tx, ctx, thread_id, run_id, for_update=True)
            if run.status != RunStatus.REQUIRES_ACTION or not run.required_tool_calls:
                raise FailedPrecondition(
                    f"Run '{run_id}' is not waiting for tool outputs (status {run.status}).",
                    reason="RUN_NOT_WAITING_FOR_TOOL_OUTPUTS",
                )
            stamp = now()
            if run.expires_at is not None and run.expires_at <= stamp:
                raise FailedPrecondition(
                    f"Run '{run_id}' expired at {run.expires_at} waiting for tool outputs.",
                    reason="RUN_EXPIRED",
                )
            expected = {call.id for call in run.required_tool_calls}
            for i, item in enumerate(outputs):
                if item.tool_call_id not in expected:
                    v.add(
                        f"tool_outputs[{i}].tool_call_id",
                        f"'{item.tool_call_id}' is not a tool call this run waits for",
                    )
            missing = sorted(expected - seen)
            if missing:
                v.add("tool_outputs", "lacks outputs for " + ", ".join(missing))
            v.raise_if_any()
            by_id = {item.tool_call_id: item.output for item in outputs}
            items: list[tuple[str, EventPayload]] = []
            for step in await tx.all_steps(run.id):
                if step.type == "tool_calls" and step.status == StepStatus.IN_PROGRESS:
                    done = msgspec.structs.replace(
                        step,
                        status=StepStatus.COMPLETED,
                        completed_at=stamp,
                        tool_calls=[
                            msgspec.structs.replace(call, output=by_id.get(call.id, call.output))
                            for call in step.tool_calls
                        ],
                    )
                    await tx.update_step(done)
                    items.append(("thread.run.step.completed", done))
            queued = msgspec.structs.replace(
                run,
                status=RunStatus.QUEUED,
                required_tool_calls=None,
                expires_at=stamp + self._expiry,
                deadline_at=deadline_at,
            )
            await tx.update_run(queued, release_lease=True)
            items.append(run_log.run_status_event(queued))
            before = await tx.last_sequence_number(run.id)
            events = await run_log.append(tx, run.id, items, last=before)
        self._hub.publish(run.id, events)
        self._hub.announce_work()
        return queued, before

    # --- following runs ---------------------------------------------------------------------

    async def check_visible(self, ctx: CallContext, thread_id: str, run_id: str) -> Run:
        async with self._storage.read() as session:
            return await self._find_run(session, ctx, thread_id, run_id)

    async def follow(
        self, run_id: str, after_sequence: int, *, stop: asyncio.Event | None = None
    ) -> AsyncIterator[RunEvent]:
        """The run's events after `after_sequence`, replayed from storage and then live, up to
        and including the next `done`. The caller checked the run is visible to it.

        When `stop` is set (the server drains), the stream ends with an `error` event coded
        `resubscribe` that carries the last sequence number delivered: resuming from it with
        SubscribeRun, on any replica, loses nothing. That event is not part of the run's log.
        """
        subscription = self._hub.subscribe(run_id)
        cursor = after_sequence
        try:
            while True:
                if stop is not None and stop.is_set():
                    yield RunEvent(
                        run_id=run_id,
                        sequence_number=cursor,
                        event="error",
                        data=StreamError(
                            code="resubscribe",
                            message="The server is shutting down; resubscribe with "
                            f"after_sequence_number={cursor}.",
                        ),
                    )
                    return
                async with self._storage.read() as session:
                    stored = await session.read_events(run_id, cursor, REPLAY_BATCH)
                    # Past the end of a run that has ended (or is gone) nothing more comes:
                    # a resume after its `done` ends at once instead of waiting forever.
                    ended = not stored and await _has_ended(session, run_id)
                    if ended:
                        # The run's end commits together with its last events, which may have
                        # landed between the two reads (each sees its own snapshot).
                        stored = await session.read_events(run_id, cursor, REPLAY_BATCH)
                        ended = not stored
                if ended:
                    return
                if stored:
                    for event in stored:
                        yield event
                        cursor = event.sequence_number
                        if event.event == run_log.DONE:
                            return
                    continue
                while stop is None or not stop.is_set():
                    batch = await subscription.next_batch(FOLLOW_POLL_SECONDS)
                    if not batch:
                        # Timed out or told to catch up: look at storage again.
                        break
                    gap = False
                    for event in batch:
                        if event.sequence_number <= cursor:
                            continue
                        if event.sequence_number > cursor + 1:
                            # Events were announced out of order (writers on other connections
                            # can publish in a different order than they committed), or before
                            # we subscribed: catch up from storage, which has them all.
                            gap = True
                            break
                        yield event
                        cursor = event.sequence_number
                        if event.event == run_log.DONE:
                            return
                    if gap:
                        break
        finally:
            subscription.close()

    async def wait_for_stream_end(
        self,
        ctx: CallContext,
        run_id: str,
        after_sequence: int,
        *,
        stop: asyncio.Event | None = None,
    ) -> Run:
        """Waits until the run ends or requires action (or the caller's deadline is near, or
        `stop` is set because the server drains), then returns the run as it is."""
        remaining = ctx.time_remaining()

        async def until_done() -> None:
            async for event in self.follow(run_id, after_sequence, stop=stop):
                if event.event == run_log.DONE:
                    return

        try:
            if remaining is None:
                await until_done()
            else:
                # Answer a little before the deadline, so the caller gets the run rather than
                # DEADLINE_EXCEEDED; the run itself goes on. The margin covers reading the run
                # and sending it back on a busy server.
                margin = min(MAX_ANSWER_MARGIN_SECONDS, max(0.05, remaining / 10))
                await asyncio.wait_for(until_done(), max(0.0, remaining - margin))
        except TimeoutError:
            pass
        async with self._storage.read() as session:
            run = await session.get_run(ctx.project_id, run_id)
        if run is None:
            raise NotFound("run", run_id)
        return run


async def _has_ended(session: StorageSession, run_id: str) -> bool:
    run = await session.get_run_any_project(run_id)
    return run is None or run.is_terminal
