"""Runs whose model call fails: the openai-SDK provider retries what may succeed (a bounded
number of times, only before the first piece of the answer), and what still fails ends the
run as `failed` with OpenAI's `last_error.code`. Each case is a golden event sequence."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from assistants.v1 import run_service_pb2 as rpb
from assistants_grpc.testing.fake_upstream import Behaviour

from .support import (
    MODEL,
    TIGHT_MODEL,
    RunServer,
    check_stream,
    last_run,
    names,
    new_thread_with_assistant,
    only,
    read_all,
    stored_state,
    streamed_text,
    text_of,
)
from .test_golden_sequences import MESSAGE_STREAMS, PLAIN_RUN, RUN_STARTS

FAILED_BEFORE_ANSWERING = [*RUN_STARTS, "thread.run.failed", "done"]
FAILED_MID_ANSWER = [
    *RUN_STARTS,
    *MESSAGE_STREAMS,
    "thread.message.incomplete",
    "thread.run.step.failed",
    "thread.run.failed",
    "done",
]
ATTEMPTS = 3
"""The first call and the `max_retries: 2` of the test route."""


@dataclass(frozen=True)
class Fault:
    behaviours: tuple[Behaviour, ...]
    sequence: list[str]
    error_code: str | None
    requests: int
    model: str = MODEL


FAULTS = {
    "429 once, then an answer": Fault((Behaviour.rate_limit(0.01),), PLAIN_RUN, None, 2),
    "429 on every attempt": Fault(
        (Behaviour.rate_limit(0.01),) * ATTEMPTS,
        FAILED_BEFORE_ANSWERING,
        "rate_limit_exceeded",
        ATTEMPTS,
    ),
    "500 on every attempt": Fault(
        (Behaviour.error(500),) * ATTEMPTS, FAILED_BEFORE_ANSWERING, "server_error", ATTEMPTS
    ),
    "503 once, then an answer": Fault((Behaviour.error(503),), PLAIN_RUN, None, 2),
    "400: the prompt is refused, without retrying": Fault(
        (Behaviour.error(400),), FAILED_BEFORE_ANSWERING, "invalid_prompt", 1
    ),
    "a hang, on every attempt": Fault(
        (Behaviour.hanging(),) * 2, FAILED_BEFORE_ANSWERING, "server_error", 2, TIGHT_MODEL
    ),
    "a stall mid-answer": Fault(
        (Behaviour(stall_after=3),), FAILED_MID_ANSWER, "server_error", 1, TIGHT_MODEL
    ),
    "a malformed chunk before any text, then an answer": Fault(
        (Behaviour.malformed(after_chunks=1),), PLAIN_RUN, None, 2
    ),
    "a malformed chunk mid-answer": Fault(
        (Behaviour.malformed(after_chunks=3),), FAILED_MID_ANSWER, "server_error", 1
    ),
    "the connection dropped before any text, then an answer": Fault(
        (Behaviour.dropped(after_chunks=0),), PLAIN_RUN, None, 2
    ),
    "the connection dropped mid-answer": Fault(
        (Behaviour.dropped(after_chunks=3),), FAILED_MID_ANSWER, "server_error", 1
    ),
    "an error event mid-answer": Fault(
        (Behaviour(error_event_after=3),), FAILED_MID_ANSWER, "server_error", 1
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_provider_fault(server: RunServer, fault: Fault) -> None:
    thread_id, assistant_id = await new_thread_with_assistant(server.stubs, model=fault.model)
    server.upstream.enqueue(*fault.behaviours)

    started = time.monotonic()
    events = await read_all(
        server.runs.RunThreadStream(
            rpb.RunThreadStreamRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )

    # Hangs and stalls are cut by the route's 0.3 s timeout: bounded, however long the
    # upstream would have waited.
    assert time.monotonic() - started < 3
    check_stream(events)
    assert names(events) == fault.sequence
    assert server.upstream.request_count == fault.requests
    run = last_run(events)
    state = await stored_state(server.stubs, thread_id, run.id)
    assert state.run == run
    if fault.error_code is None:
        assert run.status == "completed"
        assert not run.HasField("last_error")
        return
    assert run.status == "failed"
    assert run.HasField("failed_at")
    assert run.last_error.code == fault.error_code
    assert run.last_error.message
    assert run.usage.total_tokens == 0
    if fault.sequence is FAILED_MID_ANSWER:
        # What was streamed before the failure stays, in the incomplete message.
        message = only(events, "thread.message.incomplete").message
        assert message.incomplete_details.reason == "run_failed"
        assert text_of(message) == streamed_text(events, message.id) == "The quick"
        assert state.messages == [message]
        [step] = state.steps
        assert step == only(events, "thread.run.step.failed").run_step
        assert step.last_error.code == fault.error_code
        assert step.HasField("failed_at")
    else:
        assert state.steps == []
        assert state.messages == []
