"""AssistantsClient against fake synchronous servicers (pytest-grpc's server fixtures): what the
client sends, how it retries, how it decodes errors, and how its streams recover.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    message_pb2,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    run_stream_event_pb2,
)
from assistants_client import (
    AssistantsClient,
    InvalidArgumentError,
    PermissionDeniedError,
    RetryPolicy,
    RunStreamError,
    UnavailableError,
)

# Streams and unary calls of one test may be served at once.
grpc_max_workers = 4

QUICK_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
Context = grpc.ServicerContext


def _run_event(sequence: int, name: str, status: str) -> run_stream_event_pb2.RunStreamEvent:
    return run_stream_event_pb2.RunStreamEvent(
        sequence_number=sequence,
        event=name,
        run_id="run_1",
        run=run_pb2.Run(id="run_1", thread_id="thread_1", status=status),
    )


def _text_delta(sequence: int, text: str) -> run_stream_event_pb2.RunStreamEvent:
    return run_stream_event_pb2.RunStreamEvent(
        sequence_number=sequence,
        event="thread.message.delta",
        run_id="run_1",
        message_delta=message_pb2.MessageDelta(
            id="msg_1",
            delta=message_pb2.MessageDeltaBody(
                content=[
                    message_pb2.MessageContentDelta(
                        index=0, type="text", text=message_pb2.TextDelta(value=text)
                    )
                ]
            ),
        ),
    )


def _message_event(sequence: int, name: str, text: str = "") -> run_stream_event_pb2.RunStreamEvent:
    content = (
        [message_pb2.MessageContent(type="text", text=message_pb2.TextContent(value=text))]
        if text
        else []
    )
    return run_stream_event_pb2.RunStreamEvent(
        sequence_number=sequence,
        event=name,
        run_id="run_1",
        message=message_pb2.Message(id="msg_1", role="assistant", content=content),
    )


def _stream_error(sequence: int, code: str) -> run_stream_event_pb2.RunStreamEvent:
    return run_stream_event_pb2.RunStreamEvent(
        sequence_number=sequence,
        event="error",
        run_id="run_1",
        error=run_stream_event_pb2.StreamError(code=code, message=f"stream error {code}"),
    )


EVENTS = [
    _run_event(1, "thread.run.created", "queued"),
    _message_event(2, "thread.message.created"),
    _text_delta(3, "Hel"),
    _text_delta(4, "lo"),
    _message_event(5, "thread.message.completed", "Hello"),
    _run_event(6, "thread.run.completed", "completed"),
    run_stream_event_pb2.RunStreamEvent(
        sequence_number=7,
        event="done",
        run_id="run_1",
        done=run_stream_event_pb2.StreamDone(data="[DONE]"),
    ),
]


def _bad_request_status() -> grpc.Status:
    details = [
        error_details_pb2.ErrorInfo(reason="INVALID_FIELDS", domain="assistants.v1"),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="name", description="must be at most 256 characters"
                )
            ]
        ),
    ]
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="The request is invalid.", details=packed
        )
    )
    return status


@dataclass
class Recorder:
    """What the fakes saw, and how they should misbehave."""

    metadata: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    unavailable_failures: int = 0
    list_cursors: list[str] = field(default_factory=list)
    subscribe_requests: list[run_service_pb2.SubscribeRunRequest] = field(default_factory=list)
    subscribe_unavailable: bool = False


class FakeAssistants(assistant_service_pb2_grpc.AssistantServiceServicer):
    ASSISTANT_IDS = [f"asst_{n}" for n in range(5)]

    def __init__(self, recorder: Callable[[], Recorder]) -> None:
        self._recorder = recorder

    def CreateAssistant(
        self, request: assistant_service_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_service_pb2.CreateAssistantResponse:
        seen = self._recorder()
        seen.attempts += 1
        if seen.unavailable_failures:
            seen.unavailable_failures -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "The server is shutting down.")
        if request.name == "too long":
            context.abort_with_status(_bad_request_status())
        if request.name == "forbidden":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Not for you.")
        assistant = assistant_pb2.Assistant(id="asst_new", model=request.model, name=request.name)
        return assistant_service_pb2.CreateAssistantResponse(assistant=assistant)

    def GetAssistant(
        self, request: assistant_service_pb2.GetAssistantRequest, context: Context
    ) -> assistant_service_pb2.GetAssistantResponse:
        self._recorder().metadata.append(
            {key: str(value) for key, value in context.invocation_metadata()}
        )
        return assistant_service_pb2.GetAssistantResponse(
            assistant=assistant_pb2.Assistant(id=request.assistant_id)
        )

    def ListAssistants(
        self, request: assistant_service_pb2.ListAssistantsRequest, context: Context
    ) -> assistant_service_pb2.ListAssistantsResponse:
        self._recorder().list_cursors.append(request.after)
        ids = self.ASSISTANT_IDS
        start = ids.index(request.after) + 1 if request.after else 0
        page = ids[start : start + request.limit]
        return assistant_service_pb2.ListAssistantsResponse(
            data=[assistant_pb2.Assistant(id=item) for item in page],
            first_id=page[0] if page else "",
            last_id=page[-1] if page else "",
            has_more=start + len(page) < len(ids),
        )


class FakeRuns(run_service_pb2_grpc.RunServiceServicer):
    """RunThreadStream plays EVENTS, misbehaving as the request's thread id says."""

    def __init__(self, recorder: Callable[[], Recorder]) -> None:
        self._recorder = recorder

    def RunThreadStream(
        self, request: run_service_pb2.RunThreadStreamRequest, context: Context
    ) -> Iterator[run_stream_event_pb2.RunStreamEvent]:
        if request.thread_id == "thread_draining":
            yield from EVENTS[:3]
            yield _stream_error(3, "resubscribe")
        elif request.thread_id == "thread_dropped":
            yield from EVENTS[:3]
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
        elif request.thread_id == "thread_broken":
            yield EVENTS[0]
            yield _stream_error(2, "server_error")
        else:
            yield from EVENTS

    def SubscribeRun(
        self, request: run_service_pb2.SubscribeRunRequest, context: Context
    ) -> Iterator[run_stream_event_pb2.RunStreamEvent]:
        seen = self._recorder()
        seen.subscribe_requests.append(request)
        if seen.subscribe_unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "still down")
        yield from (e for e in EVENTS if e.sequence_number > request.after_sequence_number)


class FakeServicers:
    """Both fakes, sharing the recorder of the running test."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        # The fakes implement only the RPCs these tests call.
        self.assistants = FakeAssistants(lambda: self.recorder)  # type: ignore[abstract]
        self.runs = FakeRuns(lambda: self.recorder)  # type: ignore[abstract]


@pytest.fixture(scope="module")
def grpc_addr() -> str:
    """A free loopback port (pytest-grpc's own picks `localhost`, which may resolve to IPv6)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def grpc_servicer() -> FakeServicers:
    return FakeServicers()


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Callable[[FakeServicers, grpc.Server], None]:
    def add(servicers: FakeServicers, server: grpc.Server) -> None:
        assistant_service_pb2_grpc.add_AssistantServiceServicer_to_server(
            servicers.assistants, server
        )
        run_service_pb2_grpc.add_RunServiceServicer_to_server(servicers.runs, server)

    return add


@pytest.fixture
def seen(grpc_server: Any, grpc_servicer: FakeServicers) -> Recorder:
    """A fresh recorder for this test, on the module's running fake server."""
    grpc_servicer.recorder = Recorder()
    return grpc_servicer.recorder


@pytest.fixture
def client(grpc_addr: str, seen: Recorder) -> Iterator[AssistantsClient]:
    with AssistantsClient(grpc_addr, api_key="", retry=QUICK_RETRY) as made:
        yield made


def test_calls_carry_the_api_key_request_id_and_headers(
    grpc_addr: str, seen: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AssistantsClient(grpc_addr, api_key="sk-test", headers={"X-Team": "blue"}) as client:
        client.get_assistant("asst_1", request_id="req-42", extra_headers={"x-extra": "1"})
    monkeypatch.setenv("ASSISTANTS_API_KEY", "sk-from-env")
    with AssistantsClient(grpc_addr) as client:
        client.get_assistant("asst_1")
    with AssistantsClient(grpc_addr, api_key="") as client:
        client.get_assistant("asst_1")

    explicit, from_env, without = seen.metadata
    assert explicit["authorization"] == "Bearer sk-test"
    assert explicit["x-request-id"] == "req-42"
    assert explicit["x-team"] == "blue"
    assert explicit["x-extra"] == "1"
    assert from_env["authorization"] == "Bearer sk-from-env"
    assert "authorization" not in without


def test_unavailable_is_retried_until_it_succeeds(client: AssistantsClient, seen: Recorder) -> None:
    seen.unavailable_failures = 2
    assistant = client.create_assistant(model="scripted-demo")
    assert assistant.id == "asst_new"
    assert seen.attempts == 3


def test_retries_stop_after_the_policys_attempts(client: AssistantsClient, seen: Recorder) -> None:
    seen.unavailable_failures = 10
    with pytest.raises(UnavailableError):
        client.create_assistant(model="scripted-demo")
    assert seen.attempts == QUICK_RETRY.max_attempts


def test_retries_can_be_turned_off(grpc_addr: str, seen: Recorder) -> None:
    seen.unavailable_failures = 1
    with AssistantsClient(grpc_addr, retry=None) as client, pytest.raises(UnavailableError):
        client.create_assistant(model="scripted-demo")
    assert seen.attempts == 1


def test_invalid_argument_is_not_retried_and_carries_its_violations(
    client: AssistantsClient, seen: Recorder
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        client.create_assistant(model="scripted-demo", name="too long")
    error = raised.value
    assert seen.attempts == 1
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.domain) == ("INVALID_FIELDS", "assistants.v1")
    assert [(v.field, v.description) for v in error.field_violations] == [
        ("name", "must be at most 256 characters")
    ]
    assert isinstance(error.__cause__, grpc.RpcError)


def test_a_status_without_details_still_maps_to_its_type(client: AssistantsClient) -> None:
    with pytest.raises(PermissionDeniedError) as raised:
        client.create_assistant(model="scripted-demo", name="forbidden")
    assert raised.value.message == "Not for you."
    assert raised.value.reason == ""


def test_iterating_follows_the_cursors_across_pages(
    client: AssistantsClient, seen: Recorder
) -> None:
    ids = [assistant.id for assistant in client.iter_assistants(page_size=2)]
    assert ids == FakeAssistants.ASSISTANT_IDS
    assert seen.list_cursors == ["", "asst_1", "asst_3"]


def test_a_stream_adds_up_its_deltas(client: AssistantsClient) -> None:
    with client.run_thread_stream("thread_1", assistant_id="asst_1") as stream:
        assert list(stream.text_deltas()) == ["Hel", "lo"]
        assert stream.until_done().status == "completed"
    assert [m.content[0].text.value for m in stream.final_messages()] == ["Hello"]


def test_a_stream_resubscribes_when_the_server_drains(
    client: AssistantsClient, seen: Recorder
) -> None:
    with client.run_thread_stream("thread_draining", assistant_id="asst_1") as stream:
        numbers = [event.sequence_number for event in stream]
    assert numbers == [1, 2, 3, 4, 5, 6, 7]
    (request,) = seen.subscribe_requests
    assert (request.run_id, request.after_sequence_number) == ("run_1", 3)
    assert stream.messages[0].content[0].text.value == "Hello"


def test_a_stream_resumes_after_losing_its_connection(
    client: AssistantsClient, seen: Recorder
) -> None:
    with client.run_thread_stream("thread_dropped", assistant_id="asst_1") as stream:
        text = "".join(stream.text_deltas())
        assert stream.until_done().status == "completed"
    assert text == "Hello"
    assert [r.after_sequence_number for r in seen.subscribe_requests] == [3]


def test_a_stream_gives_up_when_the_run_cannot_be_picked_up(grpc_addr: str, seen: Recorder) -> None:
    seen.subscribe_unavailable = True
    with AssistantsClient(grpc_addr, retry=None, max_stream_reconnects=2) as client:
        stream = client.run_thread_stream("thread_dropped", assistant_id="asst_1")
        with stream, pytest.raises(UnavailableError):
            stream.until_done()
    assert len(seen.subscribe_requests) == 2


def test_an_error_event_raises(client: AssistantsClient) -> None:
    with client.run_thread_stream("thread_broken", assistant_id="asst_1") as stream:
        with pytest.raises(RunStreamError) as raised:
            stream.until_done()
        assert raised.value.reason == "server_error"
        assert stream.current_run is not None
