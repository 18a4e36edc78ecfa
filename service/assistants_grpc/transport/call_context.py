"""The CallContext of the call being served: the caller's project and deadline."""

from __future__ import annotations

import contextvars
import time
from typing import Any

import grpc

from assistants_grpc.application.context import DEFAULT_PROJECT, CallContext

# Set by the authentication interceptor for the duration of one call.
current_project: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_project", default=DEFAULT_PROJECT
)


def call_context(context: grpc.aio.ServicerContext[Any, Any]) -> CallContext:
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining
    return CallContext(project_id=current_project.get(), deadline=deadline)
