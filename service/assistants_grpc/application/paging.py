"""Turning a caller's list parameters into a validated page request."""

from __future__ import annotations

from assistants_grpc.domain.errors import InvalidArgument
from assistants_grpc.domain.ids import check_id
from assistants_grpc.domain.validation import Violations, check_page
from assistants_grpc.ports.storage import CursorNotFound, PageRequest


def page_request(
    limit: int | None, order: str, after: str, before: str, id_prefix: str
) -> PageRequest:
    v = Violations()
    effective_limit, effective_order = check_page(v, limit, order, after, before)
    v.raise_if_any()
    check_id(after, id_prefix, "after", required=False)
    check_id(before, id_prefix, "before", required=False)
    return PageRequest(
        limit=effective_limit, order=effective_order, after=after or None, before=before or None
    )


def cursor_error(error: CursorNotFound) -> InvalidArgument:
    return InvalidArgument.field(error.field, "names no item of this list")
