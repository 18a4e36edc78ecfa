"""Errors the domain and application layers raise; transport maps each kind to a status code.

Every message here may reach a caller, so it names the field or object at fault and never
carries internals (SQL, stack traces, upstream responses).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path in the request (`tools[3].function.name`) and what is wrong."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a caller may see. `reason` is a stable UPPER_SNAKE_CASE code."""

    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request is malformed or breaks a limit."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], *, reason: str | None = None) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        if len(violations) > 5:
            summary += f"; and {len(violations) - 5} more"
        super().__init__(summary, reason=reason)
        self.violations = violations

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    """No object with that id is visible to the caller (other projects' objects included)."""

    reason = "NOT_FOUND"

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(
            f"No {kind} found with id '{object_id}'.", reason=f"{kind.upper()}_NOT_FOUND"
        )
        self.kind = kind
        self.object_id = object_id


class FailedPrecondition(DomainError):
    """The object's state does not allow the operation (an active run, a run not waiting...)."""

    reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    """A configured limit was reached (concurrent streams, request size)."""

    reason = "RESOURCE_EXHAUSTED"


class Unauthenticated(DomainError):
    """The caller presented no valid API key."""

    reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    """A dependency (the database) is unreachable; the caller may retry."""

    reason = "UNAVAILABLE"
