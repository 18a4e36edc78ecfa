"""A request id per call, for logs and for the message of an internal error."""

from __future__ import annotations

import contextvars
import secrets

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    return _request_id.get()


def start_request(incoming: str | None) -> str:
    """Adopts the caller's `x-request-id` when it looks sane, else makes a new one."""
    if incoming and len(incoming) <= 128 and incoming.isprintable():
        request_id = incoming
    else:
        request_id = "req_" + secrets.token_hex(8)
    _request_id.set(request_id)
    return request_id
