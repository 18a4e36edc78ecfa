"""Typed exceptions for failed calls.

Every failed call raises an `AssistantsError` subclass chosen by the gRPC status code, carrying
what the server put into the `google.rpc.Status` details: the `ErrorInfo` reason and domain, the
`BadRequest` field violations of bad input, and the `ResourceInfo` of an unknown id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants.v1 import run_stream_event_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request: its path (such as `tools[0].function.name`) and why."""

    field: str
    description: str


class AssistantsError(Exception):
    """A call failed. Subclasses name the status code; catch this one for any failure.

    Attributes:
        code: the gRPC status code.
        message: the server's message, written for people.
        reason: the stable `ErrorInfo.reason`, such as `THREAD_HAS_ACTIVE_RUN`; empty when the
            server sent none (for example when the connection failed).
        domain: the `ErrorInfo.domain` (`assistants.v1` for this service's own errors).
        error_metadata: the `ErrorInfo.metadata`, such as the `request_id` of an internal error.
        field_violations: the `BadRequest` field violations of invalid input.
        resource_type, resource_name: the `ResourceInfo` of an unknown id.
    """

    status_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        error_metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        resource_type: str = "",
        resource_name: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code if code is not None else type(self).status_code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.error_metadata: dict[str, str] = dict(error_metadata or {})
        self.field_violations: list[FieldViolation] = list(field_violations)
        self.resource_type = resource_type
        self.resource_name = resource_name

    @property
    def request_id(self) -> str | None:
        """The server's request id, sent with internal errors to find them in its logs."""
        return self.error_metadata.get("request_id")

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        for violation in self.field_violations:
            text += f"\n  {violation.field}: {violation.description}"
        return text


class CallCancelledError(AssistantsError):
    """The call was cancelled (CANCELLED), usually by the caller. (Named apart from
    asyncio.CancelledError, which cancels a task rather than reporting a call.)"""

    status_code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(AssistantsError):
    """The request is invalid (INVALID_ARGUMENT); `field_violations` says where."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(AssistantsError):
    """The call's deadline passed (DEADLINE_EXCEEDED)."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(AssistantsError):
    """An id names nothing this caller can see (NOT_FOUND)."""

    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(AssistantsError):
    """The object exists already (ALREADY_EXISTS)."""

    status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(AssistantsError):
    """The caller may not do this (PERMISSION_DENIED)."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(AssistantsError):
    """A limit was reached (RESOURCE_EXHAUSTED): too many streams, a provider's rate limit."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(AssistantsError):
    """The state does not allow this (FAILED_PRECONDITION), such as a second active run on a
    thread, or tool outputs for a run that does not wait for them."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(AssistantsError):
    """The call was aborted by a conflict (ABORTED); retrying may succeed."""

    status_code = grpc.StatusCode.ABORTED


class UnimplementedError(AssistantsError):
    """The server does not offer this call (UNIMPLEMENTED)."""

    status_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(AssistantsError):
    """The server failed (INTERNAL); `request_id` finds the failure in its logs."""

    status_code = grpc.StatusCode.INTERNAL


class UnavailableError(AssistantsError):
    """The server or one of its dependencies is unavailable (UNAVAILABLE), after the client's
    retries. A unary call that answers this did not take effect; see `channels` for the one
    streaming case where a run may have been started."""

    status_code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(AssistantsError):
    """The API key is missing or unknown (UNAUTHENTICATED)."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


class RunStreamError(AssistantsError):
    """A run's event stream carried an `error` event.

    `stream_error` is that event's payload (`code`, `message`, `param`, `type`); `reason` is its
    `code`.
    """

    def __init__(self, stream_error: run_stream_event_pb2.StreamError) -> None:
        super().__init__(
            stream_error.message or "the run's event stream reported an error",
            reason=stream_error.code,
        )
        self.stream_error = stream_error


_ERROR_TYPES: dict[grpc.StatusCode, type[AssistantsError]] = {
    error_type.status_code: error_type
    for error_type in (
        CallCancelledError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        UnauthenticatedError,
    )
}


def error_from_rpc(error: grpc.RpcError) -> AssistantsError:
    """The typed exception for a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`)."""
    code = _call_code(error)
    message = _call_details(error)
    error_type = _ERROR_TYPES.get(code, AssistantsError)
    status = _rich_status(error)
    if status is None:
        return error_type(message, code=code)
    return error_type(status.message or message, code=code, **_details_fields(status))


def _call_code(error: grpc.RpcError) -> grpc.StatusCode:
    # Every RpcError the library raises is also a call object that knows its status.
    code = getattr(error, "code", None)
    result = code() if callable(code) else None
    return result if isinstance(result, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _call_details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    result = details() if callable(details) else None
    return result if isinstance(result, str) and result else str(error)


def _rich_status(error: grpc.RpcError) -> Any:
    """The google.rpc.Status of the `grpc-status-details-bin` trailer, or None without one."""
    if not callable(getattr(error, "trailing_metadata", None)):
        return None
    try:
        return rpc_status.from_call(error)
    except ValueError:
        # The trailer disagrees with the status line (a proxy rewrote one of them): trust the
        # status line and ignore the details.
        return None


def _details_fields(status: status_pb2.Status) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            fields.update(reason=info.reason, domain=info.domain, error_metadata=info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            fields.update(
                resource_type=resource.resource_type, resource_name=resource.resource_name
            )
    fields["field_violations"] = violations
    return fields
