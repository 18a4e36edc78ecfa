"""The error table: domain errors to canonical status codes with rich details.

Every error leaves with a `google.rpc.Status` in its trailers: `ErrorInfo` (a stable `reason`
and our `domain`) always, `BadRequest` field violations for bad input, `ResourceInfo` for
unknown ids. Anything unexpected becomes INTERNAL with a request id to find it in the logs,
never with the exception's text.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants_grpc.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from assistants_grpc.ports.storage import StorageOutcomeUnknown, StorageUnavailable
from assistants_grpc.transport.request_ids import current_request_id

ERROR_DOMAIN = "assistants.v1"

log = logging.getLogger(__name__)

_CODES: list[tuple[type[DomainError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (Unavailable, code_pb2.UNAVAILABLE),
]


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status a caller receives for `error`."""
    if isinstance(error, StorageOutcomeUnknown):
        # Not UNAVAILABLE, which promises the call did not take effect and is retried
        # automatically: a retried create would store a second object.
        return status_pb2.Status(
            code=code_pb2.UNKNOWN,
            message="The database was lost while the change was being committed; it may or may "
            "not have been stored. Read it back before repeating the call.",
            details=[
                _packed(
                    error_details_pb2.ErrorInfo(
                        reason="COMMIT_OUTCOME_UNKNOWN", domain=ERROR_DOMAIN
                    )
                )
            ],
        )
    if isinstance(error, StorageUnavailable):
        error = Unavailable(
            "The database is unavailable; the call did not take effect. Retry later.",
            reason="STORAGE_UNAVAILABLE",
        )
    if not isinstance(error, DomainError):
        request_id = current_request_id()
        log.exception("unexpected error", extra={"request_id": request_id})
        return status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=f"Internal error (request id {request_id}).",
            details=[
                _packed(
                    error_details_pb2.ErrorInfo(
                        reason="INTERNAL", domain=ERROR_DOMAIN, metadata={"request_id": request_id}
                    )
                )
            ],
        )
    code = next((c for kind, c in _CODES if isinstance(error, kind)), code_pb2.INTERNAL)
    details = [_packed(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, InvalidArgument):
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, NotFound):
        details.append(
            _packed(
                error_details_pb2.ResourceInfo(
                    resource_type=error.kind, resource_name=error.object_id
                )
            )
        )
    return status_pb2.Status(code=code, message=error.message, details=details)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    await context.abort_with_status(rpc_status.to_status(status_for(error)))


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Wraps a servicer method (unary or server-streaming) so errors leave as statuses."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(
            self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except (DomainError, StorageUnavailable) as error:
                await abort_with(context, error)
            except Exception as error:
                if _is_abort(error):
                    raise
                await abort_with(context, error)

        return cast(F, stream_wrapper)

    @functools.wraps(method)
    async def unary_wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        try:
            return await cast(Callable[..., Awaitable[Any]], method)(self, request, context)
        except (DomainError, StorageUnavailable) as error:
            await abort_with(context, error)
        except Exception as error:
            if _is_abort(error):
                raise
            await abort_with(context, error)

    return cast(F, unary_wrapper)


def _is_abort(error: BaseException) -> bool:
    # context.abort raises AbortError to unwind the handler; it must pass through untouched.
    return isinstance(error, grpc.aio.AbortError | grpc.RpcError)
