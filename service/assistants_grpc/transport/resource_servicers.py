"""Servicers of AssistantService, ThreadService and MessageService."""

from __future__ import annotations

from typing import Any

import grpc

from assistants.v1 import (
    assistant_service_pb2 as apb,
)
from assistants.v1 import (
    assistant_service_pb2_grpc as agrpc,
)
from assistants.v1 import (
    message_service_pb2 as mpb,
)
from assistants.v1 import (
    message_service_pb2_grpc as mgrpc,
)
from assistants.v1 import (
    thread_service_pb2 as tpb,
)
from assistants.v1 import (
    thread_service_pb2_grpc as tgrpc,
)
from assistants_grpc.application.assistants import Assistants
from assistants_grpc.application.messages import Messages
from assistants_grpc.application.threads import Threads
from assistants_grpc.domain.validation import Violations
from assistants_grpc.transport.call_context import call_context
from assistants_grpc.transport.convert_common import list_response, tool_resources_from_proto
from assistants_grpc.transport.convert_resources import (
    assistant_fields,
    assistant_proto_fields,
    assistant_to_proto,
    message_proto_fields,
    message_to_proto,
    new_message_from_proto,
    new_messages_from_proto,
    thread_to_proto,
)
from assistants_grpc.transport.errors import translate_errors
from assistants_grpc.transport.update_mask import fields_to_update, metadata_update

Context = grpc.aio.ServicerContext[Any, Any]

ASSISTANT_FIELDS = (
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
    "reasoning_effort",
)


class AssistantServicer(agrpc.AssistantServiceServicer):
    def __init__(self, assistants: Assistants) -> None:
        self._assistants = assistants

    @translate_errors
    async def CreateAssistant(
        self, request: apb.CreateAssistantRequest, context: Context
    ) -> apb.CreateAssistantResponse:
        v = Violations()
        fields = assistant_fields(v, request, set(ASSISTANT_FIELDS))
        v.raise_if_any()
        assistant = await self._assistants.create(call_context(context), fields)
        return apb.CreateAssistantResponse(assistant=assistant_to_proto(assistant))

    @translate_errors
    async def GetAssistant(
        self, request: apb.GetAssistantRequest, context: Context
    ) -> apb.GetAssistantResponse:
        assistant = await self._assistants.get(call_context(context), request.assistant_id)
        return apb.GetAssistantResponse(assistant=assistant_to_proto(assistant))

    @translate_errors
    async def ListAssistants(
        self, request: apb.ListAssistantsRequest, context: Context
    ) -> apb.ListAssistantsResponse:
        page = await self._assistants.list(
            call_context(context),
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        return list_response(apb.ListAssistantsResponse, page, assistant_proto_fields)

    @translate_errors
    async def UpdateAssistant(
        self, request: apb.UpdateAssistantRequest, context: Context
    ) -> apb.UpdateAssistantResponse:
        v = Violations()
        changes = assistant_fields(v, request, fields_to_update(request, ASSISTANT_FIELDS))
        v.raise_if_any()
        assistant = await self._assistants.update(
            call_context(context), request.assistant_id, changes
        )
        return apb.UpdateAssistantResponse(assistant=assistant_to_proto(assistant))

    @translate_errors
    async def DeleteAssistant(
        self, request: apb.DeleteAssistantRequest, context: Context
    ) -> apb.DeleteAssistantResponse:
        await self._assistants.delete(call_context(context), request.assistant_id)
        return apb.DeleteAssistantResponse(
            id=request.assistant_id, object="assistant.deleted", deleted=True
        )


class ThreadServicer(tgrpc.ThreadServiceServicer):
    def __init__(self, threads: Threads) -> None:
        self._threads = threads

    @translate_errors
    async def CreateThread(
        self, request: tpb.CreateThreadRequest, context: Context
    ) -> tpb.CreateThreadResponse:
        v = Violations()
        messages = new_messages_from_proto(v, "messages", request.messages)
        v.raise_if_any()
        thread = await self._threads.create(
            call_context(context),
            messages,
            tool_resources_from_proto(request.tool_resources)
            if request.HasField("tool_resources")
            else None,
            dict(request.metadata),
        )
        return tpb.CreateThreadResponse(thread=thread_to_proto(thread))

    @translate_errors
    async def GetThread(
        self, request: tpb.GetThreadRequest, context: Context
    ) -> tpb.GetThreadResponse:
        thread = await self._threads.get(call_context(context), request.thread_id)
        return tpb.GetThreadResponse(thread=thread_to_proto(thread))

    @translate_errors
    async def UpdateThread(
        self, request: tpb.UpdateThreadRequest, context: Context
    ) -> tpb.UpdateThreadResponse:
        present = fields_to_update(request, ("tool_resources", "metadata"))
        changes: dict[str, Any] = {}
        if "metadata" in present:
            changes["metadata"] = dict(request.metadata)
        if "tool_resources" in present:
            changes["tool_resources"] = (
                tool_resources_from_proto(request.tool_resources)
                if request.HasField("tool_resources")
                else None
            )
        thread = await self._threads.update(call_context(context), request.thread_id, changes)
        return tpb.UpdateThreadResponse(thread=thread_to_proto(thread))

    @translate_errors
    async def DeleteThread(
        self, request: tpb.DeleteThreadRequest, context: Context
    ) -> tpb.DeleteThreadResponse:
        await self._threads.delete(call_context(context), request.thread_id)
        return tpb.DeleteThreadResponse(id=request.thread_id, object="thread.deleted", deleted=True)


class MessageServicer(mgrpc.MessageServiceServicer):
    def __init__(self, messages: Messages) -> None:
        self._messages = messages

    @translate_errors
    async def CreateMessage(
        self, request: mpb.CreateMessageRequest, context: Context
    ) -> mpb.CreateMessageResponse:
        v = Violations()
        draft = new_message_from_proto(v, "", request)
        v.raise_if_any()
        message = await self._messages.create(call_context(context), request.thread_id, draft)
        return mpb.CreateMessageResponse(message=message_to_proto(message))

    @translate_errors
    async def GetMessage(
        self, request: mpb.GetMessageRequest, context: Context
    ) -> mpb.GetMessageResponse:
        message = await self._messages.get(
            call_context(context), request.thread_id, request.message_id
        )
        return mpb.GetMessageResponse(message=message_to_proto(message))

    @translate_errors
    async def ListMessages(
        self, request: mpb.ListMessagesRequest, context: Context
    ) -> mpb.ListMessagesResponse:
        page = await self._messages.list(
            call_context(context),
            request.thread_id,
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
            request.run_id,
        )
        return list_response(mpb.ListMessagesResponse, page, message_proto_fields)

    @translate_errors
    async def UpdateMessage(
        self, request: mpb.UpdateMessageRequest, context: Context
    ) -> mpb.UpdateMessageResponse:
        message = await self._messages.update_metadata(
            call_context(context),
            request.thread_id,
            request.message_id,
            metadata_update(request),
        )
        return mpb.UpdateMessageResponse(message=message_to_proto(message))

    @translate_errors
    async def DeleteMessage(
        self, request: mpb.DeleteMessageRequest, context: Context
    ) -> mpb.DeleteMessageResponse:
        await self._messages.delete(call_context(context), request.thread_id, request.message_id)
        return mpb.DeleteMessageResponse(
            id=request.message_id, object="thread.message.deleted", deleted=True
        )
