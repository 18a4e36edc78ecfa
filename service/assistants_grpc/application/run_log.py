"""Appending to a run's event log, and the event names of OpenAI's stream."""

from __future__ import annotations

from assistants_grpc.domain.models import (
    EventPayload,
    MessageDelta,
    Run,
    RunEvent,
    RunStatus,
    StreamDone,
)
from assistants_grpc.ports.storage import StorageSession

# The run statuses that have an event of their own: `thread.run.<status>`.
RUN_STATUS_EVENTS = {
    RunStatus.QUEUED: "thread.run.queued",
    RunStatus.IN_PROGRESS: "thread.run.in_progress",
    RunStatus.REQUIRES_ACTION: "thread.run.requires_action",
    RunStatus.CANCELLING: "thread.run.cancelling",
    RunStatus.CANCELLED: "thread.run.cancelled",
    RunStatus.FAILED: "thread.run.failed",
    RunStatus.COMPLETED: "thread.run.completed",
    RunStatus.INCOMPLETE: "thread.run.incomplete",
    RunStatus.EXPIRED: "thread.run.expired",
}

# After these a stream has nothing more to say until the caller acts: it ends with `done`.
STREAM_END_STATUSES = RunStatus.TERMINAL | {RunStatus.REQUIRES_ACTION}

DONE = "done"

# Events read at once when a run's log is scanned from storage.
SCAN_BATCH = 256


def run_status_event(run: Run) -> tuple[str, EventPayload]:
    return RUN_STATUS_EVENTS[run.status], run


def with_done(run: Run) -> list[tuple[str, EventPayload]]:
    """The run's status event, followed by `done` when a stream should end there."""
    events: list[tuple[str, EventPayload]] = [run_status_event(run)]
    if run.status in STREAM_END_STATUSES:
        events.append((DONE, StreamDone()))
    return events


async def append(
    session: StorageSession,
    run_id: str,
    items: list[tuple[str, EventPayload]],
    *,
    last: int | None = None,
) -> list[RunEvent]:
    """Stores events after the run's last one (`last`, when the caller already read it under
    the lock). The caller holds the run's row lock (or, on SQLite, the database lock), so no
    other writer can take the same numbers."""
    if not items:
        return []
    if last is None:
        last = await session.last_sequence_number(run_id)
    events = [
        RunEvent(run_id=run_id, sequence_number=last + i, event=name, data=payload)
        for i, (name, payload) in enumerate(items, start=1)
    ]
    await session.append_events(events)
    return events


async def streamed_texts(
    session: StorageSession, run_id: str, message_ids: set[str]
) -> dict[str, str]:
    """The text each message received through the run's committed `thread.message.delta`
    events: all a client has seen of a message still in progress, whose stored content is
    only written when it ends."""
    pieces: dict[str, list[str]] = {message_id: [] for message_id in message_ids}
    if not pieces:
        return {}
    cursor = 0
    while True:
        batch = await session.read_events(run_id, cursor, SCAN_BATCH)
        for event in batch:
            delta = event.data
            if isinstance(delta, MessageDelta) and delta.id in pieces:
                pieces[delta.id].extend(
                    part.text or "" for part in delta.content if part.type == "text"
                )
        if len(batch) < SCAN_BATCH:
            break
        cursor = batch[-1].sequence_number
    return {message_id: "".join(texts) for message_id, texts in pieces.items()}
