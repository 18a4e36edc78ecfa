"""The storage port: everything the application keeps, behind one interface for every backend.

Use cases open a session with `Storage.read()` or `Storage.transaction()` and call the
session's methods; a transaction commits when its block ends normally and rolls back on any
exception, so a failed use case never leaves half an object behind. A session's block must
await nothing but the session's own methods, so that a transaction stays short and never spans
a model call.

Every lookup takes the caller's `project_id`: an object of another project is simply not found.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from assistants_grpc.domain.models import Assistant, Message, Run, RunEvent, RunStep, Thread

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A validated list request: `after`/`before` are ids in the same collection, or None."""

    limit: int
    order: str
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run this worker now owns until `lease_expires_at`; `attempt` fences stale owners."""

    run: Run
    attempt: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    project_id: str
    name: str
    key_hash: str
    created_at: int
    revoked_at: int | None = None


class ActiveRunExists(Exception):
    """The thread already has a run that is queued, in progress, waiting or cancelling."""


class CursorNotFound(Exception):
    """A list's `after` or `before` names no object in the listed collection."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class StorageUnavailable(Exception):
    """The database cannot be reached; the operation did not happen."""


class StorageOutcomeUnknown(StorageUnavailable):
    """The database was lost while a transaction was being committed: it may or may not have
    been stored, so the caller must not take a retry to be safe."""


class StorageSession(Protocol):
    # Assistants
    async def insert_assistant(self, assistant: Assistant) -> None: ...
    async def get_assistant(self, project_id: str, assistant_id: str) -> Assistant | None: ...
    async def list_assistants(self, project_id: str, page: PageRequest) -> Page[Assistant]: ...
    async def update_assistant(self, assistant: Assistant) -> None: ...
    async def delete_assistant(self, project_id: str, assistant_id: str) -> bool: ...

    # Threads
    async def insert_thread(self, thread: Thread) -> None: ...
    async def get_thread(
        self, project_id: str, thread_id: str, *, for_update: bool = False
    ) -> Thread | None:
        """`for_update` locks the thread row until the transaction ends (serialises writers)."""
        ...

    async def update_thread(self, thread: Thread) -> None: ...
    async def delete_thread(self, project_id: str, thread_id: str) -> bool:
        """Deletes the thread with its messages, runs, steps and events."""
        ...

    # Messages
    async def insert_messages(self, messages: list[Message]) -> None: ...
    async def get_message(self, project_id: str, message_id: str) -> Message | None: ...
    async def list_messages(
        self, project_id: str, thread_id: str, page: PageRequest, *, run_id: str | None = None
    ) -> Page[Message]: ...
    async def all_messages(self, project_id: str, thread_id: str) -> list[Message]:
        """Every message of a thread, oldest first (for building a prompt)."""
        ...

    async def update_message(self, message: Message) -> None: ...
    async def delete_message(self, project_id: str, message_id: str) -> bool: ...

    # Runs
    async def insert_run(self, run: Run) -> None:
        """Raises ActiveRunExists when the thread already has an active run."""
        ...

    async def get_run(
        self, project_id: str, run_id: str, *, for_update: bool = False
    ) -> Run | None:
        """`for_update` locks the run row until the transaction ends; every writer of a run's
        events holds that lock, which keeps sequence numbers dense and unique."""
        ...

    async def lock_run_for_worker(self, run_id: str) -> tuple[str, int, int] | None:
        """Locks the run and returns (status, attempt, last event sequence number): all a
        worker needs to append events, in one statement, without decoding the run."""
        ...

    async def get_run_for_worker(self, run_id: str) -> tuple[Run, int] | None:
        """The run, locked, with its current attempt number (to check a claim is current)."""
        ...

    async def get_run_any_project(self, run_id: str) -> Run | None:
        """For the engine, which works for every project."""
        ...

    async def list_runs(self, project_id: str, thread_id: str, page: PageRequest) -> Page[Run]: ...
    async def active_run(self, project_id: str, thread_id: str) -> Run | None: ...
    async def update_run(
        self, run: Run, *, fence: ClaimedRun | None = None, release_lease: bool = False
    ) -> bool:
        """Stores the run. With `fence`, only while that claim is still the current one and
        the run is still the worker's to move; returns False (storing nothing) otherwise.
        `release_lease` frees the run for the next claim at once (it now waits, or has
        ended)."""
        ...

    # Run steps
    async def insert_step(self, step: RunStep) -> None: ...
    async def update_step(self, step: RunStep) -> None: ...
    async def get_step(self, project_id: str, step_id: str) -> RunStep | None: ...
    async def list_steps(
        self, project_id: str, run_id: str, page: PageRequest
    ) -> Page[RunStep]: ...
    async def all_steps(self, run_id: str) -> list[RunStep]:
        """Every step of a run, oldest first (for resuming a run)."""
        ...

    # Run events
    async def append_events(self, events: list[RunEvent]) -> None: ...
    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[RunEvent]: ...
    async def last_sequence_number(self, run_id: str) -> int: ...

    # The run queue
    async def claim_runs(
        self, owner: str, now: int, lease_seconds: int, limit: int
    ) -> list[ClaimedRun]:
        """Claims up to `limit` runs that need a worker: queued or cancelling runs nobody
        holds, and runs whose holder's lease has run out. Each claim bumps the attempt."""
        ...

    async def renew_leases(
        self, owner: str, claims: list[ClaimedRun], now: int, lease_seconds: int
    ) -> set[str]:
        """Extends the leases still held; returns the ids of the runs that were lost."""
        ...

    async def release_run(self, claim: ClaimedRun, owner: str) -> None:
        """Gives a claimed run back (queued work left for the next worker, as on shutdown)."""
        ...

    async def runs_past_expiry(self, now: int, limit: int) -> list[Run]:
        """Runs waiting in `requires_action` whose `expires_at` has passed."""
        ...

    # API keys
    async def insert_api_key(self, record: ApiKeyRecord) -> None: ...
    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...
    async def revoke_api_key(self, key_id: str, now: int) -> bool: ...


class Storage(Protocol):
    async def start(self) -> None:
        """Connects and applies pending migrations."""
        ...

    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raises StorageUnavailable when the database does not answer."""
        ...

    def read(self) -> AbstractAsyncContextManager[StorageSession]: ...
    def transaction(self) -> AbstractAsyncContextManager[StorageSession]: ...
