"""One server interceptor for what every call needs: a request id, authentication, refusal
while draining, a log line, metrics and (when enabled) a trace span.

They share one wrapper because each layer of handler wrapping costs every call a little CPU;
the work itself is in small functions below, and the wrapped handler of each method is built
once and reused.

Logging: a call that ends OK is logged at DEBUG, a caller's mistake at INFO and a failure of
ours (INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED) at WARNING, each with its method, code,
duration and request id. At the default INFO level a busy server therefore logs what needs
attention, not every call; metrics count every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from assistants_grpc.domain.errors import DomainError, InvalidArgument, Unavailable
from assistants_grpc.ports.storage import StorageUnavailable
from assistants_grpc.transport.call_context import current_project
from assistants_grpc.transport.errors import abort_with
from assistants_grpc.transport.request_ids import start_request

log = logging.getLogger("assistants_grpc.calls")
tracer = trace.get_tracer("assistants_grpc")

CALLS = Counter(
    "assistants_grpc_calls", "Finished calls by method and status code.", ["method", "code"]
)
LATENCY = Histogram(
    "assistants_grpc_call_seconds",
    "Call latency by method (for streams: until the stream ends).",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Health and reflection stay open to everyone, so that probes and grpcurl work without a key.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

Authenticate = Callable[[str | None], Awaitable[str]]
"""Takes the `authorization` header (or None) and returns the caller's project id, or raises
Unauthenticated."""


class _UndecodableRequest:
    """Stands in for a request whose bytes do not parse (corrupt, not UTF-8 where text is due,
    nested deeper than the parser allows), so that the call is refused with INVALID_ARGUMENT
    rather than grpc's UNKNOWN carrying the parser's own message."""


_UNDECODABLE = _UndecodableRequest()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return _UNDECODABLE

    return deserialize


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if request is _UNDECODABLE:
        await abort_with(
            context,
            InvalidArgument.field("request", "cannot be decoded: malformed, or nested too deeply"),
        )


class ServerState:
    """Whether the server still takes new calls; flipped once when draining starts."""

    def __init__(self) -> None:
        self.draining = False


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item in metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _status_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return str(code)


_SERVER_SIDE_CODES = frozenset({"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED"})


def _log_level(code: str) -> int:
    if code == "OK":
        return logging.DEBUG
    return logging.WARNING if code in _SERVER_SIDE_CODES else logging.INFO


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, authenticate: Authenticate | None, state: ServerState, *, tracing: bool = False
    ) -> None:
        self._authenticate = authenticate
        self._state = state
        self._tracing = tracing
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._latency: dict[str, Any] = {}
        self._calls: dict[tuple[str, str], Any] = {}

    async def _admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Sets the request id and project for this call, or aborts it."""
        metadata = context.invocation_metadata()
        start_request(_metadata_value(metadata, "x-request-id"))
        if method.startswith(OPEN_SERVICES):
            return
        if self._state.draining:
            await abort_with(
                context,
                Unavailable(
                    "The server is shutting down; retry on another replica.", reason="DRAINING"
                ),
            )
        if self._authenticate is not None:
            try:
                project = await self._authenticate(_metadata_value(metadata, "authorization"))
            except (DomainError, StorageUnavailable) as error:
                # A key that cannot be checked (the database is down) is UNAVAILABLE, not
                # UNAUTHENTICATED: the caller should retry, not replace its key.
                await abort_with(context, error)
            current_project.set(project)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = self._wrap(method, handler)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                # grpc.aio serves async-generator handlers; the stubs type them as iterators.
                self._wrap_stream(
                    method, cast(Callable[..., AsyncIterator[Any]], handler.unary_stream)
                ),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(
        self, method: str, behavior: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._admit(method, context)
            await _refuse_undecodable(request, context)
            return await behavior(request, context)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            try:
                if not self._tracing:
                    return await serve(request, context)
                with tracer.start_as_current_span(method):
                    return await serve(request, context)
            finally:
                self._record(method, context, started)

        return wrapped

    def _wrap_stream(
        self, method: str, behavior: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            # The span is not made current: a stream's generator is resumed across many
            # scheduler steps, and a context attached in one cannot be detached in another.
            span = tracer.start_span(method) if self._tracing else None
            try:
                await self._admit(method, context)
                await _refuse_undecodable(request, context)
                async for item in behavior(request, context):
                    yield item
            finally:
                if span is not None:
                    span.end()
                self._record(method, context, started)

        return wrapped

    def _record(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float
    ) -> None:
        elapsed = time.perf_counter() - started
        code = _status_name(context)
        counter = self._calls.get((method, code))
        if counter is None:
            counter = self._calls[(method, code)] = CALLS.labels(method, code)
        counter.inc()
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = LATENCY.labels(method)
        latency.observe(elapsed)
        level = _log_level(code)
        if log.isEnabledFor(level):
            log.log(
                level,
                "call",
                extra={"method": method, "code": code, "ms": round(elapsed * 1000, 2)},
            )
