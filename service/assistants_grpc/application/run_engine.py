"""The run engine: claims runs, executes them against the model, and keeps them moving.

Each replica runs one engine. It claims runs from storage under a lease (so a run executes on
exactly one replica, and a dead replica's runs are taken over when its lease runs out), renews
the leases of the runs it executes, expires runs left waiting for tool outputs, and stops a
run's model call when a caller cancels it.

Everything a run does is committed before anyone sees it: events get their sequence numbers
in the transaction that stores them, and streams only ever read committed events. A crash
therefore loses at most the model output not yet committed, never an event a client saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from enum import Enum

import msgspec

from assistants_grpc.application import prompt, run_log
from assistants_grpc.application.context import now
from assistants_grpc.domain.ids import IdPrefix, new_id
from assistants_grpc.domain.models import (
    ContentDelta,
    ContentPart,
    EventPayload,
    FunctionCall,
    Message,
    MessageDelta,
    MessageStatus,
    Run,
    RunError,
    RunStatus,
    RunStep,
    RunStepDelta,
    StepStatus,
    ToolCallDelta,
    ToolCallRecord,
    Usage,
)
from assistants_grpc.ports.event_hub import EventHub
from assistants_grpc.ports.model_provider import (
    ChatEvent,
    Finish,
    FinishReason,
    ModelRouter,
    ProviderError,
    ProviderErrorKind,
    TextDelta,
    TokenUsage,
)
from assistants_grpc.ports.model_provider import ToolCallDelta as ProviderToolCallDelta
from assistants_grpc.ports.storage import ClaimedRun, Storage, StorageUnavailable

log = logging.getLogger(__name__)

# A run whose executor died this many times is failed rather than tried again: something
# about it (not the replica) is the likely cause.
MAX_ATTEMPTS = 3
# Deltas waiting to be committed are flushed once this many have piled up, even while the
# model keeps streaming.
MAX_PENDING_DELTAS = 64


@dataclass(frozen=True, slots=True)
class EngineSettings:
    replica_id: str
    concurrency: int
    lease_seconds: int
    poll_interval_seconds: float
    run_expiry_seconds: int
    provider_timeout_seconds: float


class StopReason(Enum):
    CANCEL = "cancel"
    """A caller cancelled the run: finish it as `cancelled`."""
    SHUTDOWN = "shutdown"
    """This replica is stopping: give the run back for the next claim."""
    LOST = "lost"
    """Another worker owns the run now: write nothing more."""


class LostClaim(Exception):
    """The run is no longer this worker's to move (taken over, ended, deleted)."""


class CancelRequested(Exception):
    """A caller asked to cancel the run while it was executing."""


class RunEnded(Exception):
    """The run reached a state where this execution is over (ended, or waits for a caller)."""


@dataclass
class _Execution:
    claim: ClaimedRun
    task: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None


class RunEngine:
    def __init__(
        self, storage: Storage, router: ModelRouter, hub: EventHub, settings: EngineSettings
    ) -> None:
        self._storage = storage
        self._router = router
        self._hub = hub
        self._settings = settings
        self._executions: dict[str, _Execution] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = False
        self._capacity_freed = asyncio.Event()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._hub.on_cancel(self._cancel_requested)
        self._accepting = True
        self._loops = [asyncio.create_task(self._expiry_loop(), name="run-expiry")]
        if self._settings.concurrency > 0:
            self._loops += [
                asyncio.create_task(self._claim_loop(), name="run-claims"),
                asyncio.create_task(self._lease_loop(), name="run-leases"),
            ]

    async def stop(self, grace_seconds: float) -> None:
        """Stops claiming; lets running executions finish for `grace_seconds`, then gives the
        rest back so that the next replica (or the next start) resumes them."""
        self._accepting = False
        running = [e.task for e in self._executions.values() if e.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace_seconds)
        for execution in list(self._executions.values()):
            self._stop(execution, StopReason.SHUTDOWN)
        remaining = [e.task for e in self._executions.values() if e.task is not None]
        if remaining:
            await asyncio.wait(remaining, timeout=5)
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    @property
    def active_runs(self) -> int:
        return len(self._executions)

    def _stop(self, execution: _Execution, reason: StopReason) -> None:
        if execution.task is not None and not execution.task.done():
            if execution.stop_reason is None:
                execution.stop_reason = reason
            execution.task.cancel()

    def _cancel_requested(self, run_id: str) -> None:
        execution = self._executions.get(run_id)
        if execution is not None:
            self._stop(execution, StopReason.CANCEL)

    # --- background loops -------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while self._accepting:
            free = self._settings.concurrency - len(self._executions)
            claims: list[ClaimedRun] = []
            if free > 0:
                try:
                    async with self._storage.transaction() as tx:
                        claims = await tx.claim_runs(
                            self._settings.replica_id, now(), self._settings.lease_seconds, free
                        )
                except StorageUnavailable:
                    log.warning("cannot claim runs: the database is unavailable")
                except Exception:
                    log.exception("claiming runs failed")
            for claim in claims:
                self._launch(claim)
            if claims and len(claims) == free:
                continue
            if free <= 0:
                self._capacity_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._capacity_freed.wait(), self._settings.poll_interval_seconds
                    )
            elif not claims:
                await self._hub.wait_for_work(self._settings.poll_interval_seconds)

    def _launch(self, claim: ClaimedRun) -> None:
        execution = _Execution(claim=claim)
        self._executions[claim.run.id] = execution
        execution.task = asyncio.create_task(self._execute(execution), name=f"run-{claim.run.id}")

    async def _lease_loop(self) -> None:
        interval = max(0.5, self._settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            claims = [e.claim for e in self._executions.values()]
            if not claims:
                continue
            try:
                async with self._storage.transaction() as tx:
                    lost = await tx.renew_leases(
                        self._settings.replica_id, claims, now(), self._settings.lease_seconds
                    )
            except Exception:
                log.warning("renewing run leases failed; will retry", exc_info=True)
                continue
            for run_id in lost:
                execution = self._executions.get(run_id)
                if execution is not None:
                    self._stop(execution, StopReason.LOST)

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.expire_due_runs()
            except Exception:
                log.warning("expiring runs failed; will retry", exc_info=True)

    async def expire_due_runs(self) -> int:
        """Moves runs whose wait for tool outputs passed `expires_at` to `expired`."""
        async with self._storage.read() as session:
            due = await session.runs_past_expiry(now(), 100)
        expired = 0
        for candidate in due:
            async with self._storage.transaction() as tx:
                run = await tx.get_run(candidate.project_id, candidate.id, for_update=True)
                stamp = now()
                if (
                    run is None
                    or run.status != RunStatus.REQUIRES_ACTION
                    or run.expires_at is None
                    or run.expires_at >= stamp
                ):
                    continue
                items: list[tuple[str, EventPayload]] = []
                for step in await tx.all_steps(run.id):
                    if step.status == StepStatus.IN_PROGRESS:
                        ended = msgspec.structs.replace(
                            step, status=StepStatus.EXPIRED, expired_at=stamp
                        )
                        await tx.update_step(ended)
                        items.append(("thread.run.step.expired", ended))
                result = msgspec.structs.replace(
                    run, status=RunStatus.EXPIRED, required_tool_calls=None
                )
                await tx.update_run(result, release_lease=True)
                items.extend(run_log.with_done(result))
                events = await run_log.append(tx, run.id, items)
            self._hub.publish(run.id, events)
            expired += 1
        return expired

    # --- one run ----------------------------------------------------------------------------

    async def _execute(self, execution: _Execution) -> None:
        run_id = execution.claim.run.id
        executor = RunExecutor(self._storage, self._router, self._hub, self._settings, execution)
        try:
            await executor.execute()
        except asyncio.CancelledError:
            reason = execution.stop_reason
            if reason is StopReason.CANCEL:
                await _shielded(executor.finish_cancelled())
            elif reason is StopReason.SHUTDOWN:
                await _shielded(executor.give_back())
            elif reason is None:
                raise
        except CancelRequested:
            await _shielded(executor.finish_cancelled())
        except (LostClaim, RunEnded):
            pass
        except StorageUnavailable:
            # Nothing more can be written; the lease runs out and the run is resumed later.
            log.warning("run %s paused: the database is unavailable", run_id)
        except Exception:
            log.exception("run %s failed unexpectedly", run_id)
            await _shielded(
                executor.finish_failed(
                    RunError(code="server_error", message="The run failed on an internal error.")
                )
            )
        finally:
            self._executions.pop(run_id, None)
            self._capacity_freed.set()


async def _shielded(work: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
    """Runs the closing writes of a run even when its task is being cancelled."""
    try:
        await asyncio.shield(work)  # type: ignore[arg-type]
    except (LostClaim, RunEnded, CancelRequested):
        pass
    except StorageUnavailable:
        log.warning("could not record the end of a run: the database is unavailable")
    except Exception:
        log.exception("could not record the end of a run")


@dataclass
class _Completion:
    """What one model call produced so far."""

    message: Message | None = None
    message_step: RunStep | None = None
    tool_step: RunStep | None = None
    tool_calls: dict[int, ToolCallRecord] = field(default_factory=dict)
    usage: Usage | None = None
    finish: FinishReason | None = None
    text_parts: list[str] = field(default_factory=list)


class RunExecutor:
    """Executes one claimed run until it ends, waits for tool outputs, or is stopped."""

    def __init__(
        self,
        storage: Storage,
        router: ModelRouter,
        hub: EventHub,
        settings: EngineSettings,
        execution: _Execution,
    ) -> None:
        self._storage = storage
        self._router = router
        self._hub = hub
        self._settings = settings
        self._execution = execution
        self._claim = execution.claim
        self.run = execution.claim.run
        self._completion = _Completion()

    # --- committing ---------------------------------------------------------------------------

    async def _commit(
        self,
        items: list[tuple[str, EventPayload]],
        *,
        run: Run | None = None,
        release: bool = False,
        new_steps: Iterable[RunStep] = (),
        steps: Iterable[RunStep] = (),
        new_messages: Iterable[Message] = (),
        messages: Iterable[Message] = (),
        finishing_cancel: bool = False,
    ) -> None:
        """Stores changes and their events in one transaction, if the run is still ours."""
        async with self._storage.transaction() as tx:
            current = await tx.get_run_for_worker(self.run.id)
            if current is None:
                raise LostClaim
            stored, attempt = current
            if attempt != self._claim.attempt or stored.is_terminal:
                raise LostClaim
            if stored.status == RunStatus.REQUIRES_ACTION:
                raise LostClaim
            if stored.status == RunStatus.CANCELLING and not finishing_cancel:
                raise CancelRequested
            for step in new_steps:
                await tx.insert_step(step)
            for step in steps:
                await tx.update_step(step)
            await tx.insert_messages(list(new_messages))
            for message in messages:
                await tx.update_message(message)
            if run is not None:
                if stored.metadata != self.run.metadata:
                    # A caller changed the metadata meanwhile; keep theirs.
                    run = msgspec.structs.replace(run, metadata=stored.metadata)
                if not await tx.update_run(run, fence=self._claim, release_lease=release):
                    raise LostClaim
            events = await run_log.append(tx, self.run.id, items)
        if run is not None:
            self.run = run
        self._hub.publish(self.run.id, events)

    # --- the flow -----------------------------------------------------------------------------

    async def execute(self) -> None:
        run = self.run
        if run.status == RunStatus.CANCELLING:
            raise CancelRequested
        if self._claim.attempt > MAX_ATTEMPTS:
            await self.finish_failed(
                RunError(
                    code="server_error",
                    message=f"The run was interrupted {MAX_ATTEMPTS} times (its worker stopped "
                    "before finishing) and was given up.",
                )
            )
            return
        if run.status == RunStatus.IN_PROGRESS:
            await self._close_interrupted_steps()
        else:
            started = msgspec.structs.replace(
                run, status=RunStatus.IN_PROGRESS, started_at=run.started_at or now()
            )
            await self._commit([run_log.run_status_event(started)], run=started)
        while True:
            if await self._call_model():
                return

    async def _close_interrupted_steps(self) -> None:
        """A previous worker died mid-call: what it left in progress is marked failed, and the
        call is made again (completed steps are kept and never repeated)."""
        async with self._storage.read() as session:
            steps = await session.all_steps(self.run.id)
            open_messages = [
                m
                for m in await session.all_messages(self.run.project_id, self.run.thread_id)
                if m.run_id == self.run.id and m.status == MessageStatus.IN_PROGRESS
            ]
        stamp = now()
        error = RunError(
            code="server_error",
            message="The worker executing this step stopped; the step is retried.",
        )
        items: list[tuple[str, EventPayload]] = []
        closed_messages = []
        for message in open_messages:
            closed = msgspec.structs.replace(
                message,
                status=MessageStatus.INCOMPLETE,
                incomplete_reason="run_failed",
                incomplete_at=stamp,
            )
            closed_messages.append(closed)
            items.append(("thread.message.incomplete", closed))
        closed_steps = []
        for step in steps:
            if step.status == StepStatus.IN_PROGRESS:
                closed_step = msgspec.structs.replace(
                    step, status=StepStatus.FAILED, failed_at=stamp, last_error=error
                )
                closed_steps.append(closed_step)
                items.append(("thread.run.step.failed", closed_step))
        if items:
            await self._commit(items, messages=closed_messages, steps=closed_steps)

    async def _call_model(self) -> bool:
        """One model call. True when the execution is over (the run ended or waits)."""
        run = self.run
        route = self._router.resolve(run.model)
        if route is None:
            await self.finish_failed(
                RunError(
                    code="invalid_prompt",
                    message=f"The model '{run.model}' is not served by this deployment.",
                )
            )
            return True
        provider, upstream_model = route
        async with self._storage.read() as session:
            history = await session.all_messages(run.project_id, run.thread_id)
            steps = await session.all_steps(run.id)
        messages, estimate = prompt.build_messages(run, history, steps)
        used = run.usage or Usage()
        if run.max_prompt_tokens is not None:
            budget = run.max_prompt_tokens - used.prompt_tokens
            if run.truncation_strategy.type == "auto":
                messages, estimate = prompt.fit_to_budget(messages, estimate, budget)
            if estimate > budget:
                await self.finish_incomplete("max_prompt_tokens")
                return True
        completion_cap: int | None = None
        if run.max_completion_tokens is not None:
            completion_cap = run.max_completion_tokens - used.completion_tokens
            if completion_cap <= 0:
                await self.finish_incomplete("max_completion_tokens")
                return True
        timeout = self._settings.provider_timeout_seconds
        if run.deadline_at is not None:
            remaining = run.deadline_at - time.time()
            if remaining <= 0:
                await self.finish_failed(
                    RunError(
                        code="server_error",
                        message="The deadline of the call waiting for this run passed before "
                        "the model answered.",
                    )
                )
                return True
            timeout = min(timeout, remaining)
        request = prompt.chat_request(run, upstream_model, messages, completion_cap, timeout)
        self._completion = _Completion()
        try:
            await self._stream(provider.stream_chat(request))
        except ProviderError as error:
            await self.finish_failed(RunError(code=error.kind.value, message=error.message))
            return True
        return await self._finish_completion(estimate)

    async def _stream(self, events: AsyncIterator[ChatEvent]) -> None:
        """Consumes the provider's stream, committing deltas in batches: whatever arrived
        while the previous batch was being committed goes out together."""
        queue: asyncio.Queue[ChatEvent | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in events:
                    queue.put_nowait(event)
            except BaseException as error:  # handed to the consumer, which re-raises it
                queue.put_nowait(error)
                return
            queue.put_nowait(None)

        producer = asyncio.create_task(pump())
        try:
            finished = False
            while not finished:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < MAX_PENDING_DELTAS:
                    batch.append(queue.get_nowait())
                ready: list[ChatEvent] = []
                for item in batch:
                    if item is None:
                        finished = True
                        break
                    if isinstance(item, BaseException):
                        if isinstance(item, asyncio.CancelledError):
                            raise ProviderError(
                                ProviderErrorKind.SERVER_ERROR, "The model call was aborted."
                            )
                        raise item
                    ready.append(item)
                await self._apply(ready)
        finally:
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer

    async def _apply(self, batch: list[ChatEvent]) -> None:
        """Turns a batch of provider events into steps, messages and delta events."""
        c = self._completion
        stamp = now()
        items: list[tuple[str, EventPayload]] = []
        new_steps: list[RunStep] = []
        new_messages: list[Message] = []
        text = ""
        call_deltas: dict[int, ToolCallDelta] = {}
        for event in batch:
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                if c.message is None:
                    self._open_message(stamp, items, new_steps, new_messages)
                text += event.text
                c.text_parts.append(event.text)
            elif isinstance(event, ProviderToolCallDelta):
                if c.tool_step is None:
                    step = RunStep(
                        id=new_id(IdPrefix.STEP),
                        project_id=self.run.project_id,
                        run_id=self.run.id,
                        thread_id=self.run.thread_id,
                        assistant_id=self.run.assistant_id,
                        created_at=stamp,
                        type="tool_calls",
                    )
                    c.tool_step = step
                    new_steps.append(step)
                    items += [
                        ("thread.run.step.created", step),
                        ("thread.run.step.in_progress", step),
                    ]
                record = c.tool_calls.get(event.index)
                if record is None:
                    record = ToolCallRecord(
                        id=new_id(IdPrefix.TOOL_CALL), name=event.name or "", arguments=""
                    )
                    c.tool_calls[event.index] = record
                    call_deltas[event.index] = ToolCallDelta(
                        index=event.index, id=record.id, name=record.name, arguments=""
                    )
                elif event.name and not record.name:
                    record.name = event.name
                record.arguments += event.arguments
                delta = call_deltas.setdefault(event.index, ToolCallDelta(index=event.index))
                delta.arguments = (delta.arguments or "") + event.arguments
            elif isinstance(event, TokenUsage):
                c.usage = Usage(
                    prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens
                )
            elif isinstance(event, Finish):
                c.finish = event.reason
        if text and c.message is not None:
            items.append(
                (
                    "thread.message.delta",
                    MessageDelta(id=c.message.id, content=[ContentDelta(index=0, text=text)]),
                )
            )
        if call_deltas and c.tool_step is not None:
            items.append(
                (
                    "thread.run.step.delta",
                    RunStepDelta(
                        id=c.tool_step.id,
                        step_type="tool_calls",
                        tool_calls=[call_deltas[i] for i in sorted(call_deltas)],
                    ),
                )
            )
        if items:
            await self._commit(items, new_steps=new_steps, new_messages=new_messages)

    def _open_message(
        self,
        stamp: int,
        items: list[tuple[str, EventPayload]],
        new_steps: list[RunStep],
        new_messages: list[Message],
    ) -> None:
        c = self._completion
        message = Message(
            id=new_id(IdPrefix.MESSAGE),
            project_id=self.run.project_id,
            thread_id=self.run.thread_id,
            created_at=stamp,
            role="assistant",
            content=[],
            status=MessageStatus.IN_PROGRESS,
            assistant_id=self.run.assistant_id,
            run_id=self.run.id,
        )
        step = RunStep(
            id=new_id(IdPrefix.STEP),
            project_id=self.run.project_id,
            run_id=self.run.id,
            thread_id=self.run.thread_id,
            assistant_id=self.run.assistant_id,
            created_at=stamp,
            type="message_creation",
            message_id=message.id,
        )
        c.message, c.message_step = message, step
        new_steps.append(step)
        new_messages.append(message)
        items += [
            ("thread.run.step.created", step),
            ("thread.run.step.in_progress", step),
            ("thread.message.created", message),
            ("thread.message.in_progress", message),
        ]

    async def _finish_completion(self, estimate: int) -> bool:
        c = self._completion
        stamp = now()
        usage = c.usage or Usage(
            prompt_tokens=estimate,
            completion_tokens=prompt.estimate_tokens("".join(c.text_parts))
            + sum(prompt.estimate_tokens(t.arguments) for t in c.tool_calls.values()),
        )
        total = (self.run.usage or Usage()) + usage
        truncated = c.finish == FinishReason.LENGTH
        items: list[tuple[str, EventPayload]] = []
        steps: list[RunStep] = []
        messages: list[Message] = []
        if c.message is not None and c.message_step is not None:
            content = [ContentPart(type="text", text="".join(c.text_parts))]
            if truncated or c.finish == FinishReason.CONTENT_FILTER:
                reason = "max_tokens" if truncated else "content_filter"
                message = msgspec.structs.replace(
                    c.message,
                    content=content,
                    status=MessageStatus.INCOMPLETE,
                    incomplete_reason=reason,
                    incomplete_at=stamp,
                )
                items.append(("thread.message.incomplete", message))
            else:
                message = msgspec.structs.replace(
                    c.message, content=content, status=MessageStatus.COMPLETED, completed_at=stamp
                )
                items.append(("thread.message.completed", message))
            step = msgspec.structs.replace(
                c.message_step,
                status=StepStatus.COMPLETED,
                completed_at=stamp,
                usage=None if c.tool_calls else usage,
            )
            items.append(("thread.run.step.completed", step))
            messages.append(message)
            steps.append(step)

        if c.tool_calls and c.tool_step is not None and not truncated:
            calls = [c.tool_calls[i] for i in sorted(c.tool_calls)]
            tool_step = msgspec.structs.replace(c.tool_step, tool_calls=calls, usage=usage)
            steps.append(tool_step)
            waiting = msgspec.structs.replace(
                self.run,
                status=RunStatus.REQUIRES_ACTION,
                required_tool_calls=[
                    FunctionCall(id=t.id, name=t.name, arguments=t.arguments) for t in calls
                ],
                expires_at=stamp + self._settings.run_expiry_seconds,
                usage=total,
            )
            items.extend(run_log.with_done(waiting))
            await self._commit(items, run=waiting, release=True, steps=steps, messages=messages)
            return True

        if c.tool_step is not None:
            # The call was cut off mid-arguments: the partial tool calls are not requested.
            failed_step = msgspec.structs.replace(
                c.tool_step,
                status=StepStatus.FAILED,
                failed_at=stamp,
                last_error=RunError(
                    code="server_error", message="The model stopped before finishing the call."
                ),
            )
            steps.append(failed_step)
            items.append(("thread.run.step.failed", failed_step))

        if truncated:
            # Whether our budget or the model's own limit cut it off, the run ran out of
            # completion tokens; OpenAI has no other reason to give.
            ended = msgspec.structs.replace(
                self.run,
                status=RunStatus.INCOMPLETE,
                incomplete_reason="max_completion_tokens",
                usage=total,
                expires_at=None,
            )
        else:
            ended = msgspec.structs.replace(
                self.run,
                status=RunStatus.COMPLETED,
                completed_at=stamp,
                usage=total,
                expires_at=None,
            )
        items.extend(run_log.with_done(ended))
        await self._commit(items, run=ended, release=True, steps=steps, messages=messages)
        return True

    # --- endings ------------------------------------------------------------------------------

    async def _end(
        self, ended: Run, step_status: str, message_reason: str, error: RunError | None
    ) -> None:
        """Ends the run, closing the step and message of the call in flight."""
        c = self._completion
        stamp = now()
        items: list[tuple[str, EventPayload]] = []
        steps: list[RunStep] = []
        messages: list[Message] = []
        if c.message is not None:
            message = msgspec.structs.replace(
                c.message,
                content=[ContentPart(type="text", text="".join(c.text_parts))],
                status=MessageStatus.INCOMPLETE,
                incomplete_reason=message_reason,
                incomplete_at=stamp,
            )
            messages.append(message)
            items.append(("thread.message.incomplete", message))
        stamp_field = {
            StepStatus.CANCELLED: "cancelled_at",
            StepStatus.FAILED: "failed_at",
        }[step_status]
        for open_step in (c.message_step, c.tool_step):
            if open_step is None:
                continue
            closed = msgspec.structs.replace(
                open_step,
                status=step_status,
                last_error=error if step_status == StepStatus.FAILED else None,
                **{stamp_field: stamp},
            )
            steps.append(closed)
            items.append((f"thread.run.step.{step_status}", closed))
        items.extend(run_log.with_done(ended))
        self._completion = _Completion()
        await self._commit(
            items,
            run=ended,
            release=True,
            steps=steps,
            messages=messages,
            finishing_cancel=ended.status == RunStatus.CANCELLED,
        )

    async def finish_failed(self, error: RunError) -> None:
        ended = msgspec.structs.replace(
            self.run,
            status=RunStatus.FAILED,
            failed_at=now(),
            last_error=error,
            expires_at=None,
            usage=self.run.usage or Usage(),
        )
        await self._end(ended, StepStatus.FAILED, "run_failed", error)

    async def finish_cancelled(self) -> None:
        ended = msgspec.structs.replace(
            self.run,
            status=RunStatus.CANCELLED,
            cancelled_at=now(),
            expires_at=None,
            usage=self.run.usage or Usage(),
        )
        await self._end(ended, StepStatus.CANCELLED, "run_cancelled", None)

    async def finish_incomplete(self, reason: str) -> None:
        ended = msgspec.structs.replace(
            self.run,
            status=RunStatus.INCOMPLETE,
            incomplete_reason=reason,
            expires_at=None,
            usage=self.run.usage or Usage(),
        )
        items = run_log.with_done(ended)
        await self._commit(items, run=ended, release=True)

    async def give_back(self) -> None:
        """Releases the run for the next claim, as it is: it resumes from its last commit."""
        async with self._storage.transaction() as tx:
            await tx.release_run(self._claim, self._settings.replica_id)
