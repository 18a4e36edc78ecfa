"""Use cases of assistants: create, get, list, update, delete."""

from __future__ import annotations

from typing import Any

import msgspec

from assistants_grpc.application.context import CallContext, now
from assistants_grpc.application.paging import cursor_error, page_request
from assistants_grpc.domain import limits
from assistants_grpc.domain.errors import NotFound
from assistants_grpc.domain.ids import IdPrefix, check_id, new_id
from assistants_grpc.domain.models import Assistant
from assistants_grpc.domain.validation import (
    REASONING_EFFORTS,
    Violations,
    check_choice,
    check_length,
    check_metadata,
    check_model_name,
    check_number,
    check_response_format,
    check_tool_resources,
    check_tools,
)
from assistants_grpc.ports.model_provider import ModelRouter
from assistants_grpc.ports.storage import CursorNotFound, Page, Storage


def check_assistant(
    v: Violations, assistant: Assistant, router: ModelRouter, *, model_changed: bool = True
) -> None:
    check_model_name(v, "model", assistant.model, required=True)
    # Only a model being set must be served now; a stored one may have lost its route since.
    if model_changed and assistant.model and router.resolve(assistant.model) is None:
        v.add("model", f"'{assistant.model[:256]}' is not served by this deployment")
    check_length(v, "name", assistant.name, limits.MAX_NAME_LENGTH)
    check_length(v, "description", assistant.description, limits.MAX_DESCRIPTION_LENGTH)
    check_length(v, "instructions", assistant.instructions, limits.MAX_INSTRUCTIONS_LENGTH)
    check_tools(v, "tools", assistant.tools, limits.MAX_ASSISTANT_TOOLS)
    check_tool_resources(v, "tool_resources", assistant.tool_resources)
    check_metadata(v, "metadata", assistant.metadata)
    check_number(v, "temperature", assistant.temperature, 0, 2)
    check_number(v, "top_p", assistant.top_p, 0, 1)
    check_response_format(v, "response_format", assistant.response_format)
    check_choice(v, "reasoning_effort", assistant.reasoning_effort, REASONING_EFFORTS)


class Assistants:
    def __init__(self, storage: Storage, router: ModelRouter) -> None:
        self._storage = storage
        self._router = router

    async def create(self, ctx: CallContext, fields: dict[str, Any]) -> Assistant:
        """`fields` holds the caller's values by Assistant attribute name."""
        assistant = Assistant(
            id=new_id(IdPrefix.ASSISTANT), project_id=ctx.project_id, created_at=now(), **fields
        )
        v = Violations()
        check_assistant(v, assistant, self._router)
        v.raise_if_any()
        async with self._storage.transaction() as tx:
            await tx.insert_assistant(assistant)
        return assistant

    async def get(self, ctx: CallContext, assistant_id: str) -> Assistant:
        check_id(assistant_id, IdPrefix.ASSISTANT, "assistant_id")
        async with self._storage.read() as session:
            assistant = await session.get_assistant(ctx.project_id, assistant_id)
        if assistant is None:
            raise NotFound("assistant", assistant_id)
        return assistant

    async def list(
        self, ctx: CallContext, limit: int | None, order: str, after: str, before: str
    ) -> Page[Assistant]:
        page = page_request(limit, order, after, before, IdPrefix.ASSISTANT)
        try:
            async with self._storage.read() as session:
                return await session.list_assistants(ctx.project_id, page)
        except CursorNotFound as error:
            raise cursor_error(error) from None

    async def update(
        self, ctx: CallContext, assistant_id: str, changes: dict[str, Any]
    ) -> Assistant:
        """`changes` maps Assistant attribute names to their new values."""
        check_id(assistant_id, IdPrefix.ASSISTANT, "assistant_id")
        async with self._storage.transaction() as tx:
            current = await tx.get_assistant(ctx.project_id, assistant_id)
            if current is None:
                raise NotFound("assistant", assistant_id)
            updated = msgspec.structs.replace(current, **changes)
            v = Violations()
            check_assistant(v, updated, self._router, model_changed="model" in changes)
            v.raise_if_any()
            await tx.update_assistant(updated)
        return updated

    async def delete(self, ctx: CallContext, assistant_id: str) -> None:
        check_id(assistant_id, IdPrefix.ASSISTANT, "assistant_id")
        async with self._storage.transaction() as tx:
            if not await tx.delete_assistant(ctx.project_id, assistant_id):
                raise NotFound("assistant", assistant_id)
