"""A Python client of the Assistants gRPC service, in the shape of OpenAI's Assistants API.

    from assistants_client import AssistantsClient

    with AssistantsClient("127.0.0.1:50051") as client:
        assistant = client.get_assistants().data[0]
        thread = client.create_thread(messages=[{"role": "user", "content": "Hi!"}])
        with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            for text in stream.text_deltas():
                print(text, end="", flush=True)
            run = stream.until_done()

`AsyncAssistantsClient` is the same client for asyncio. Results are the generated protobuf
messages of `assistants.v1`; failures raise `AssistantsError` subclasses.
"""

from .async_client import AsyncAssistantsClient
from .calls import CallOptions
from .channels import RetryPolicy
from .client import AssistantsClient
from .errors import (
    AbortedError,
    AlreadyExistsError,
    AssistantsError,
    CallCancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RunStreamError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    error_from_rpc,
)
from .params import (
    ContentPartParam,
    MessageParam,
    ThreadParam,
    ToolOutputParam,
    ToolParam,
)
from .snapshots import RunStreamState, message_text, text_deltas
from .streams import AsyncRunStream, RunStream

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AssistantsClient",
    "AssistantsError",
    "AsyncAssistantsClient",
    "AsyncRunStream",
    "CallCancelledError",
    "CallOptions",
    "ContentPartParam",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MessageParam",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "RunStream",
    "RunStreamError",
    "RunStreamState",
    "ThreadParam",
    "ToolOutputParam",
    "ToolParam",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "error_from_rpc",
    "message_text",
    "text_deltas",
]
