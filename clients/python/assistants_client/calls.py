"""Per-call settings: the deadline and the metadata (API key, request id, extra headers)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

API_KEY_ENV = "ASSISTANTS_API_KEY"
"""Read for the API key when none is given."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a unary call may take unless the client or the call says otherwise."""


class CallOptions(TypedDict, total=False):
    """Options every method takes besides its own arguments.

    Keys:
        timeout: seconds the call may take; None waits without a deadline. Unary calls default
            to the client's `timeout`; streams default to no deadline, since a run may take
            long and leaving the stream does not stop it.
        extra_headers: more metadata to send, such as routing headers of a proxy.
        request_id: sent as `x-request-id`; the server logs the call under it.
    """

    timeout: float | None
    extra_headers: Mapping[str, str]
    request_id: str


CALL_OPTION_NAMES = frozenset(CallOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class CallDefaults:
    """What every call sends unless the call says otherwise."""

    api_key: str | None
    timeout: float | None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(
        cls, api_key: str | None, timeout: float | None, headers: Mapping[str, str] | None
    ) -> CallDefaults:
        """`api_key` None reads $ASSISTANTS_API_KEY; an empty string sends no key."""
        resolved_key = os.environ.get(API_KEY_ENV) if api_key is None else api_key
        return cls(
            api_key=resolved_key or None,
            timeout=timeout,
            headers=tuple((name.lower(), value) for name, value in (headers or {}).items()),
        )

    def metadata(self, options: CallOptions) -> tuple[tuple[str, str], ...]:
        entries = list(self.headers)
        if self.api_key:
            entries.append(("authorization", f"Bearer {self.api_key}"))
        request_id = options.get("request_id")
        if request_id:
            entries.append(("x-request-id", request_id))
        entries.extend(
            (name.lower(), value) for name, value in options.get("extra_headers", {}).items()
        )
        return tuple(entries)

    def unary_timeout(self, options: CallOptions) -> float | None:
        return options.get("timeout", self.timeout)

    @staticmethod
    def stream_timeout(options: CallOptions) -> float | None:
        return options.get("timeout")


def split_call_options(params: Mapping[str, Any]) -> tuple[dict[str, Any], CallOptions]:
    """Separates a method's keyword arguments into request fields and call options."""
    fields: dict[str, Any] = {}
    options = CallOptions()
    for name, value in params.items():
        if name in CALL_OPTION_NAMES:
            options[name] = value  # type: ignore[literal-required]
        else:
            fields[name] = value
    return fields, options
