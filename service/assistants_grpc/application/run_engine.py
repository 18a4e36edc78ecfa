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
from collections.abc import AsyncIterator, Callable, Iterable
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
    RunEvent,
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
from assistants_grpc.ports.storage import (
    ClaimedRun,
    Storage,
    StorageSession,
    StorageUnavailable,
)

log = logging.getLogger(__name__)

# A run whose executor died this many times is failed rather than tried again: something
# about it (not the replica) is the likely cause.
MAX_ATTEMPTS = 3
# Deltas waiting to be committed are flushed once this many have piled up, even while the
# model keeps streaming.
MAX_PENDING_DELTAS = 64
# After a commit, the next one waits this long, so that what the model streams meanwhile is
# committed (and sent) together. Each commit and each event costs CPU in the database and in
# every stream; at typical token rates this cuts both several times over, while the first
# tokens of a reply still go out at once and no piece waits longer than this.
DELTA_COMMIT_INTERVAL_SECONDS = 0.05
# Beyond this many runs executing here at once, the interval grows in proportion (up to
# MAX_DELTA_COMMIT_INTERVAL_SECONDS): under load the replica sends fewer, larger deltas rather
# than falling behind on all of them, and each stream still sees its text several times a second.
RUNS_PER_DELTA_INTERVAL = 64
MAX_DELTA_COMMIT_INTERVAL_SECONDS = 0.2


def delta_commit_interval(active_runs: int) -> float:
    """How long a run gathers streamed deltas before committing them, with `active_runs`
    executing on this replica."""
    load = max(1.0, active_runs / RUNS_PER_DELTA_INTERVAL)
    return min(MAX_DELTA_COMMIT_INTERVAL_SECONDS, DELTA_COMMIT_INTERVAL_SECONDS * load)


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


@dataclass
class _Execution:
    claim: ClaimedRun
    task: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    running: bool = False
    """Set once the task's code runs: a task cancelled before that would never run its
    cleanup, so a stop that comes earlier is left for the task to find when it begins."""


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

    def delta_commit_interval(self) -> float:
        """How long a run gathers streamed deltas before committing them, at the current load."""
        return delta_commit_interval(len(self._executions))

    def _stop(self, execution: _Execution, reason: StopReason) -> None:
        # The first reason wins; cancelling again would only interrupt the closing writes
        # of the first one.
        if execution.stop_reason is not None:
            return
        execution.stop_reason = reason
        if execution.running and execution.task is not None and not execution.task.done():
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
            started: list[tuple[str, list[RunEvent]]] = []
            if free > 0:
                try:
                    async with self._storage.transaction() as tx:
                        claims = await tx.claim_runs(
                            self._settings.replica_id, now(), self._settings.lease_seconds, free
                        )
                        claims, started = await _start_queued(tx, claims)
                except StorageUnavailable:
                    claims, started = [], []
                    log.warning("cannot claim runs: the database is unavailable")
                except Exception:
                    claims, started = [], []
                    log.exception("claiming runs failed")
            for run_id, events in started:
                self._hub.publish(run_id, events)
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
            renewed_attempts = {claim.run.id: claim.attempt for claim in claims}
            for run_id in lost:
                execution = self._executions.get(run_id)
                # The run may have been claimed anew meanwhile (it waited for tool outputs,
                # got them, and came back here): only the claim that was lost is stopped.
                if execution is not None and execution.claim.attempt == renewed_attempts[run_id]:
                    self._stop(execution, StopReason.LOST)

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval_seconds)
            try:
                await self.expire_due_runs()
            except Exception:
                log.warning("expiring runs failed; will retry", exc_info=True)

    async def expire_due_runs(self) -> int:
        """Moves runs whose wait for tool outputs passed `expires_at` to `expired`."""
        # `expires_at` is in whole seconds and a run has expired once the clock reaches it
        # (as SubmitToolOutputs judges): due are those with `expires_at < now + 1`.
        async with self._storage.read() as session:
            due = await session.runs_past_expiry(now() + 1, 100)
        expired = 0
        for candidate in due:
            async with self._storage.transaction() as tx:
                run = await tx.get_run(candidate.project_id, candidate.id, for_update=True)
                stamp = now()
                if (
                    run is None
                    or run.status != RunStatus.REQUIRES_ACTION
                    or run.expires_at is None
                    or run.expires_at > stamp
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
                    run, status=RunStatus.EXPIRED, required_tool_calls=None, expires_at=None
                )
                await tx.update_run(result, release_lease=True)
                items.extend(run_log.with_done(result))
                events = await run_log.append(tx, run.id, items)
            self._hub.publish(run.id, events)
            expired += 1
        return expired

    # --- one run ----------------------------------------------------------------------------

    async def _execute(self, execution: _Execution) -> None:
        execution.running = True
        run_id = execution.claim.run.id
        executor = RunExecutor(
            self._storage,
            self._router,
            self._hub,
            self._settings,
            execution,
            delta_interval=self.delta_commit_interval,
        )
        try:
            if execution.stop_reason is None:
                await executor.execute()
            else:
                await _after_stop(executor, execution.stop_reason)
        except asyncio.CancelledError:
            if execution.stop_reason is None:
                raise
            await _after_stop(executor, execution.stop_reason)
        except CancelRequested:
            await _shielded(executor.finish_cancelled())
        except LostClaim:
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
            # A run that went back to the queue may already run again here under a new claim;
            # that execution keeps its place.
            if self._executions.get(run_id) is execution:
                del self._executions[run_id]
            self._capacity_freed.set()


async def _start_queued(
    tx: StorageSession, claims: list[ClaimedRun]
) -> tuple[list[ClaimedRun], list[tuple[str, list[RunEvent]]]]:
    """Moves the queued runs among `claims` to `in_progress` in the claiming transaction, which
    spares each run a transaction of its own before its model call; returns the claims to
    execute, as they now stand, and the events to publish once committed. The rows are locked
    by the claim, so nobody changed them since they were read."""
    stamp = now()
    moved: list[ClaimedRun] = []
    published: list[tuple[str, list[RunEvent]]] = []
    for claim in claims:
        run = claim.run
        if run.status != RunStatus.QUEUED:
            moved.append(claim)
            continue
        started = msgspec.structs.replace(
            run,
            status=RunStatus.IN_PROGRESS,
            started_at=run.started_at or stamp,
            execution_attempt=claim.attempt,
        )
        if not await tx.update_run(started, fence=claim):
            continue  # no longer this claim's run: nothing to execute
        events = await run_log.append(tx, run.id, [run_log.run_status_event(started)])
        moved.append(ClaimedRun(run=started, attempt=claim.attempt))
        published.append((run.id, events))
    return moved, published


async def _after_stop(executor: RunExecutor, reason: StopReason) -> None:
    if reason is StopReason.CANCEL:
        await _shielded(executor.finish_cancelled())
    elif reason is StopReason.SHUTDOWN:
        await _shielded(executor.give_back())
    # A lost run is another worker's now: nothing more is written.


async def _shielded(work: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
    """Runs the closing writes of a run even when its task is being cancelled."""
    try:
        await asyncio.shield(work)  # type: ignore[arg-type]
    except (LostClaim, CancelRequested):
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
    """The text of the open message."""
    text_length: int = 0
    """Characters of text the call produced, in all its messages."""


class RunExecutor:
    """Executes one claimed run until it ends, waits for tool outputs, or is stopped."""

    def __init__(
        self,
        storage: Storage,
        router: ModelRouter,
        hub: EventHub,
        settings: EngineSettings,
        execution: _Execution,
        *,
        delta_interval: Callable[[], float],
    ) -> None:
        self._storage = storage
        self._router = router
        self._hub = hub
        self._settings = settings
        self._execution = execution
        self._delta_interval = delta_interval
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
            # Most commits only add deltas: a light lock-and-check does for them; the run
            # itself is read only when it is about to be rewritten.
            locked = await tx.lock_run_for_worker(self.run.id)
            if locked is None:
                raise LostClaim
            status, attempt, last_sequence = locked
            if attempt != self._claim.attempt or status in RunStatus.TERMINAL:
                raise LostClaim
            if status == RunStatus.REQUIRES_ACTION:
                raise LostClaim
            if status == RunStatus.CANCELLING and not finishing_cancel:
                raise CancelRequested
            for step in new_steps:
                await tx.insert_step(step)
            for step in steps:
                await tx.update_step(step)
            await tx.insert_messages(list(new_messages))
            for message in messages:
                await tx.update_message(message)
            if run is not None:
                current = await tx.get_run_for_worker(self.run.id)
                if current is None:
                    raise LostClaim
                stored = current[0]
                if stored.metadata != run.metadata:
                    # A caller changed the metadata meanwhile: keep theirs, in the stored run
                    # and in the events that carry it.
                    proposed = run
                    run = msgspec.structs.replace(run, metadata=stored.metadata)
                    items = [(name, run if data is proposed else data) for name, data in items]
                if not await tx.update_run(run, fence=self._claim, release_lease=release):
                    raise LostClaim
            events = await run_log.append(tx, self.run.id, items, last=last_sequence)
        if run is not None:
            self.run = run
        self._hub.publish(self.run.id, events)

    # --- the flow -----------------------------------------------------------------------------

    async def execute(self) -> None:
        run = self.run
        if run.status == RunStatus.CANCELLING:
            raise CancelRequested
        if run.status == RunStatus.IN_PROGRESS and run.execution_attempt != self._claim.attempt:
            # Claimed mid-execution: the worker that started it stopped. Each claim bumps the
            # attempt, so the claims since the execution began count the interruptions.
            interrupted = self._claim.attempt - (run.execution_attempt or 1)
            if interrupted >= MAX_ATTEMPTS:
                await self.finish_failed(
                    RunError(
                        code="server_error",
                        message=f"The run was interrupted {interrupted} times (its worker "
                        "stopped before finishing) and was given up.",
                    )
                )
                return
            await self._close_interrupted_work()
        # Otherwise the claim itself started the run (see `_start_queued`).
        await self._call_model()

    async def _open_work(self) -> tuple[list[RunStep], list[Message]]:
        """The run's steps and messages still in progress, as committed. A message's content
        is stored only when it ends, so its text is rebuilt from the committed deltas: exactly
        what clients have seen of it."""
        async with self._storage.read() as session:
            steps = [
                step
                for step in await session.all_steps(self.run.id)
                if step.status == StepStatus.IN_PROGRESS
            ]
            messages = [
                message
                for message in await session.all_messages(self.run.project_id, self.run.thread_id)
                if message.run_id == self.run.id and message.status == MessageStatus.IN_PROGRESS
            ]
            texts = await run_log.streamed_texts(
                session, self.run.id, {message.id for message in messages}
            )
        with_text = [
            msgspec.structs.replace(
                message, content=[ContentPart(type="text", text=texts[message.id])]
            )
            if texts.get(message.id)
            else message
            for message in messages
        ]
        return steps, with_text

    async def _close_interrupted_work(self) -> None:
        """A previous worker died mid-call: what it left in progress is marked failed, and the
        call is made again (completed steps are kept and never repeated)."""
        steps, messages = await self._open_work()
        error = RunError(
            code="server_error",
            message="The worker executing this step stopped; the step is retried.",
        )
        items, closed_steps, closed_messages = _close(
            steps, messages, StepStatus.FAILED, "run_failed", error
        )
        if items:
            await self._commit(items, messages=closed_messages, steps=closed_steps)

    async def _call_model(self) -> None:
        """One model call, and what follows from its answer: the run ends or waits."""
        run = self.run
        route = self._router.resolve(run.model)
        if route is None:
            await self.finish_failed(
                RunError(
                    code="invalid_prompt",
                    message=f"The model '{run.model}' is not served by this deployment.",
                )
            )
            return
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
                return
        completion_cap: int | None = None
        if run.max_completion_tokens is not None:
            completion_cap = run.max_completion_tokens - used.completion_tokens
            if completion_cap <= 0:
                await self.finish_incomplete("max_completion_tokens")
                return
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
                return
            timeout = min(timeout, remaining)
        request = prompt.chat_request(run, upstream_model, messages, completion_cap, timeout)
        self._completion = _Completion()
        try:
            await self._stream(provider.stream_chat(request))
        except ProviderError as error:
            await self.finish_failed(RunError(code=error.kind.value, message=error.message))
            return
        await self._finish_completion(estimate)

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
        loop = asyncio.get_running_loop()
        last_commit = -MAX_DELTA_COMMIT_INTERVAL_SECONDS
        try:
            finished = False
            while not finished:
                batch = [await queue.get()]
                pause = self._delta_interval() - (loop.time() - last_commit)
                if pause > 0 and batch[0] is not None and not isinstance(batch[0], BaseException):
                    await asyncio.sleep(pause)
                while not queue.empty() and len(batch) < MAX_PENDING_DELTAS:
                    batch.append(queue.get_nowait())
                ready: list[ChatEvent] = []
                failure: BaseException | None = None
                for item in batch:
                    if item is None:
                        finished = True
                        break
                    if isinstance(item, BaseException):
                        failure = item
                        break
                    ready.append(item)
                # What the model said before it failed is committed first, so that the run's
                # log shows it, whether or not it arrived in the same batch as the failure.
                await self._apply(ready)
                last_commit = loop.time()
                if isinstance(failure, asyncio.CancelledError):
                    raise ProviderError(
                        ProviderErrorKind.SERVER_ERROR, "The model call was aborted."
                    )
                if failure is not None:
                    raise failure
        finally:
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer

    async def _apply(self, batch: list[ChatEvent]) -> None:
        """Turns a batch of provider events into steps, messages and delta events, in
        OpenAI's order: a message is completed (with its step) before the step of the tool
        calls that follow it begins."""
        c = self._completion
        stamp = now()
        items: list[tuple[str, EventPayload]] = []
        new_steps: list[RunStep] = []
        new_messages: list[Message] = []
        closed_steps: list[RunStep] = []
        closed_messages: list[Message] = []
        text = ""
        opened_message = False
        call_deltas: dict[int, ToolCallDelta] = {}

        def flush_text() -> None:
            nonlocal text, opened_message
            if text and c.message is not None:
                role = "assistant" if opened_message else None
                delta = MessageDelta(
                    id=c.message.id, role=role, content=[ContentDelta(index=0, text=text)]
                )
                items.append(("thread.message.delta", delta))
            text, opened_message = "", False

        for event in batch:
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                if c.message is None:
                    self._open_message(stamp, items, new_steps, new_messages)
                    opened_message = True
                text += event.text
                c.text_parts.append(event.text)
                c.text_length += len(event.text)
            elif isinstance(event, ProviderToolCallDelta):
                if c.tool_step is None:
                    flush_text()
                    if c.message is not None and c.message_step is not None:
                        message, step = self._complete_message(c.message, c.message_step, stamp)
                        closed_messages.append(message)
                        closed_steps.append(step)
                        items += [
                            ("thread.message.completed", message),
                            ("thread.run.step.completed", step),
                        ]
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
                call_delta = call_deltas.setdefault(event.index, ToolCallDelta(index=event.index))
                if event.name and not record.name:
                    # Some servers name the function after the call's first chunk.
                    record.name = call_delta.name = event.name
                record.arguments += event.arguments
                call_delta.arguments = (call_delta.arguments or "") + event.arguments
            elif isinstance(event, TokenUsage):
                c.usage = Usage(
                    prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens
                )
            elif isinstance(event, Finish):
                c.finish = event.reason
        flush_text()
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
            await self._commit(
                items,
                new_steps=new_steps,
                new_messages=new_messages,
                steps=closed_steps,
                messages=closed_messages,
            )

    def _complete_message(
        self, open_message: Message, open_step: RunStep, stamp: int
    ) -> tuple[Message, RunStep]:
        """The open message with all its text, completed, and its step (whose usage the tool
        calls that follow will carry); afterwards text that follows starts a new message."""
        c = self._completion
        message = msgspec.structs.replace(
            open_message,
            content=[ContentPart(type="text", text="".join(c.text_parts))],
            status=MessageStatus.COMPLETED,
            completed_at=stamp,
        )
        step = msgspec.structs.replace(open_step, status=StepStatus.COMPLETED, completed_at=stamp)
        c.message, c.message_step, c.text_parts = None, None, []
        return message, step

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

    async def _finish_completion(self, estimate: int) -> None:
        c = self._completion
        stamp = now()
        usage = c.usage or Usage(
            prompt_tokens=estimate,
            completion_tokens=prompt.estimate_tokens_of_length(c.text_length)
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
            return

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

    # --- endings ------------------------------------------------------------------------------

    async def _end(
        self, ended: Run, step_status: str, message_reason: str, error: RunError | None
    ) -> None:
        """Ends the run, closing every step and message it left in progress. They are taken
        from storage rather than from the call in flight: a batch whose commit was refused
        (the run was being cancelled) created nothing, so it has nothing to close."""
        steps, messages = await self._open_work()
        items, closed_steps, closed_messages = _close(
            steps, messages, step_status, message_reason, error
        )
        items.extend(run_log.with_done(ended))
        self._completion = _Completion()
        await self._commit(
            items,
            run=ended,
            release=True,
            steps=closed_steps,
            messages=closed_messages,
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


def _close(
    steps: list[RunStep],
    messages: list[Message],
    step_status: str,
    message_reason: str,
    error: RunError | None,
) -> tuple[list[tuple[str, EventPayload]], list[RunStep], list[Message]]:
    """Steps and messages left in progress, ended: the messages `incomplete` for
    `message_reason`, the steps with `step_status` (`failed` ones carrying `error`); with their
    events, messages first as OpenAI orders them."""
    stamp = now()
    items: list[tuple[str, EventPayload]] = []
    closed_messages = [
        msgspec.structs.replace(
            message,
            status=MessageStatus.INCOMPLETE,
            incomplete_reason=message_reason,
            incomplete_at=stamp,
        )
        for message in messages
    ]
    items.extend(("thread.message.incomplete", message) for message in closed_messages)
    stamp_field = {StepStatus.CANCELLED: "cancelled_at", StepStatus.FAILED: "failed_at"}[
        step_status
    ]
    closed_steps = [
        msgspec.structs.replace(
            step,
            status=step_status,
            last_error=error if step_status == StepStatus.FAILED else None,
            **{stamp_field: stamp},
        )
        for step in steps
    ]
    items.extend((f"thread.run.step.{step_status}", step) for step in closed_steps)
    return items, closed_steps, closed_messages
