"""Domain objects for the storage tests, complete enough that a lost field would show."""

from __future__ import annotations

from assistants_grpc.domain.ids import IdPrefix, new_id
from assistants_grpc.domain.models import (
    Assistant,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    Message,
    ResponseFormat,
    Run,
    RunEvent,
    RunStep,
    StreamDone,
    Thread,
    Tool,
    ToolCallRecord,
    ToolResources,
    Usage,
)

PROJECT = "proj_a"
OTHER_PROJECT = "proj_b"
# Every object shares one creation second unless a test says otherwise: lists must not rely on
# timestamps to tell objects apart.
NOW = 1_700_000_000


def make_assistant(project_id: str = PROJECT, *, name: str | None = "helper") -> Assistant:
    return Assistant(
        id=new_id(IdPrefix.ASSISTANT),
        project_id=project_id,
        created_at=NOW,
        model="gpt-4o-mini",
        name=name,
        instructions="Answer briefly.",
        tools=[
            Tool(
                type="function",
                function=FunctionDefinition(
                    name="lookup",
                    parameters={"type": "object", "properties": {"q": {"type": "string"}}},
                ),
            )
        ],
        tool_resources=ToolResources(file_search_vector_store_ids=["vs_1"]),
        metadata={"team": "storage"},
        temperature=0.25,
        response_format=ResponseFormat(type="json_object"),
    )


def make_thread(project_id: str = PROJECT) -> Thread:
    return Thread(
        id=new_id(IdPrefix.THREAD),
        project_id=project_id,
        created_at=NOW,
        metadata={"topic": "tests"},
    )


def make_message(
    thread: Thread, *, text: str = "hello", run_id: str | None = None, role: str = "user"
) -> Message:
    return Message(
        id=new_id(IdPrefix.MESSAGE),
        project_id=thread.project_id,
        thread_id=thread.id,
        created_at=NOW,
        role=role,
        content=[ContentPart(type="text", text=text)],
        run_id=run_id,
        metadata={"n": text},
    )


def make_run(
    thread: Thread,
    *,
    status: str = "queued",
    assistant_id: str = "asst_unstored",
    expires_at: int | None = NOW + 600,
) -> Run:
    return Run(
        id=new_id(IdPrefix.RUN),
        project_id=thread.project_id,
        thread_id=thread.id,
        assistant_id=assistant_id,
        created_at=NOW,
        status=status,
        model="gpt-4o-mini",
        instructions="Answer briefly.",
        metadata={"kind": "test"},
        expires_at=expires_at,
        required_tool_calls=(
            [FunctionCall(id="call_1", name="lookup", arguments='{"q": "x"}')]
            if status == "requires_action"
            else None
        ),
    )


def make_step(run: Run, *, message_id: str | None = None) -> RunStep:
    return RunStep(
        id=new_id(IdPrefix.STEP),
        project_id=run.project_id,
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        created_at=NOW,
        type="tool_calls" if message_id is None else "message_creation",
        message_id=message_id,
        tool_calls=(
            [ToolCallRecord(id="call_1", name="lookup", arguments="{}")]
            if message_id is None
            else []
        ),
        usage=Usage(prompt_tokens=3, completion_tokens=4),
    )


def done_event(run_id: str, sequence_number: int) -> RunEvent:
    return RunEvent(run_id=run_id, sequence_number=sequence_number, event="done", data=StreamDone())
