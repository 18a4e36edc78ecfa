"""AssistantService through the generated stubs: create, get, list, update, delete with OpenAI's
semantics."""

from __future__ import annotations

import time

from google.protobuf import field_mask_pb2, json_format, struct_pb2

from assistants.v1 import assistant_service_pb2 as pb
from assistants.v1 import common_pb2

from ..support.stubs import Stubs
from .rich_errors import invalid_field, not_found

MODEL = "scripted-echo"


def weather_tool() -> common_pb2.Tool:
    parameters = struct_pb2.Struct()
    parameters.update({"type": "object", "properties": {"city": {"type": "string"}}})
    return common_pb2.Tool(
        function=common_pb2.FunctionTool(
            name="get_weather", description="Current weather", parameters=parameters, strict=True
        )
    )


async def create(stubs: Stubs, **fields: object) -> pb.CreateAssistantResponse:
    return await stubs.assistants.CreateAssistant(
        pb.CreateAssistantRequest(model=MODEL, **fields)  # type: ignore[arg-type]
    )


async def test_create_returns_every_field_as_given(stubs: Stubs) -> None:
    before = int(time.time())
    response = await create(
        stubs,
        name="Math tutor",
        description="Answers questions about maths",
        instructions="You are a patient tutor.",
        tools=[weather_tool(), common_pb2.Tool(type="code_interpreter")],
        tool_resources=common_pb2.ToolResources(
            code_interpreter=common_pb2.CodeInterpreterResources(file_ids=["file-1"])
        ),
        metadata={"team": "edu"},
        temperature=0.5,
        top_p=0.9,
        response_format=common_pb2.ResponseFormat(type="json_object"),
        reasoning_effort="low",
    )
    assistant = response.assistant
    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert before <= assistant.created_at <= int(time.time())
    assert assistant.model == MODEL
    assert (assistant.name, assistant.description) == (
        "Math tutor",
        "Answers questions about maths",
    )
    assert assistant.instructions == "You are a patient tutor."
    assert [t.type for t in assistant.tools] == ["function", "code_interpreter"]
    function = assistant.tools[0].function
    assert (function.name, function.description, function.strict) == (
        "get_weather",
        "Current weather",
        True,
    )
    assert json_format.MessageToDict(function.parameters) == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
    }
    assert list(assistant.tool_resources.code_interpreter.file_ids) == ["file-1"]
    assert dict(assistant.metadata) == {"team": "edu"}
    assert (assistant.temperature, assistant.top_p) == (0.5, 0.9)
    assert assistant.response_format.type == "json_object"
    assert assistant.response_format.WhichOneof("format") == "json_object"
    assert assistant.reasoning_effort == "low"

    fetched = await stubs.assistants.GetAssistant(pb.GetAssistantRequest(assistant_id=assistant.id))
    assert fetched.assistant == assistant


async def test_unset_optional_fields_stay_absent(stubs: Stubs) -> None:
    assistant = (await create(stubs)).assistant
    for name in (
        "name",
        "description",
        "instructions",
        "temperature",
        "top_p",
        "reasoning_effort",
        "tool_resources",
        "response_format",
    ):
        assert not assistant.HasField(name), name
    assert not assistant.tools
    assert not assistant.metadata


async def test_model_must_be_given_and_served(stubs: Stubs) -> None:
    await invalid_field(stubs.assistants.CreateAssistant(pb.CreateAssistantRequest()), "model")
    error = await invalid_field(
        stubs.assistants.CreateAssistant(pb.CreateAssistantRequest(model="gpt-unknown")), "model"
    )
    assert "not served" in error.violations["model"]


async def test_tool_type_alone_is_enough_and_must_agree_with_the_variant(stubs: Stubs) -> None:
    assistant = (await create(stubs, tools=[common_pb2.Tool(type="file_search")])).assistant
    assert assistant.tools[0].type == "file_search"
    await invalid_field(
        create(
            stubs,
            tools=[
                common_pb2.Tool(type="function", code_interpreter=common_pb2.CodeInterpreterTool())
            ],
        ),
        "tools[0].type",
    )
    await invalid_field(create(stubs, tools=[common_pb2.Tool(type="browser")]), "tools[0].type")
    await invalid_field(
        create(stubs, tools=[common_pb2.Tool(type="function")]), "tools[0].function"
    )


async def test_update_without_a_mask_replaces_the_fields_that_are_set(stubs: Stubs) -> None:
    assistant = (
        await create(stubs, name="Before", instructions="Keep me", metadata={"a": "1", "b": "2"})
    ).assistant
    updated = (
        await stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(assistant_id=assistant.id, name="After", metadata={"c": "3"})
        )
    ).assistant
    assert updated.name == "After"
    assert updated.instructions == "Keep me"
    # Metadata is replaced as a whole, as in OpenAI.
    assert dict(updated.metadata) == {"c": "3"}
    assert (updated.id, updated.created_at, updated.model) == (
        assistant.id,
        assistant.created_at,
        assistant.model,
    )
    fetched = await stubs.assistants.GetAssistant(pb.GetAssistantRequest(assistant_id=assistant.id))
    assert fetched.assistant == updated


async def test_update_with_a_mask_clears_the_named_fields_left_empty(stubs: Stubs) -> None:
    assistant = (
        await create(
            stubs,
            name="Named",
            instructions="Be brief.",
            tools=[weather_tool()],
            metadata={"k": "v"},
            temperature=1.5,
        )
    ).assistant
    updated = (
        await stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(
                assistant_id=assistant.id,
                # Set but not in the mask: ignored.
                description="ignored",
                update_mask=field_mask_pb2.FieldMask(
                    paths=["name", "tools", "metadata", "temperature"]
                ),
            )
        )
    ).assistant
    assert not updated.HasField("name")
    assert not updated.tools
    assert not updated.metadata
    assert not updated.HasField("temperature")
    assert not updated.HasField("description")
    assert updated.instructions == "Be brief."


async def test_update_checks_the_mask_and_the_new_values(stubs: Stubs) -> None:
    assistant = (await create(stubs)).assistant
    await invalid_field(
        stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(
                assistant_id=assistant.id, update_mask=field_mask_pb2.FieldMask(paths=["id"])
            )
        ),
        "update_mask",
    )
    await invalid_field(
        stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(
                assistant_id=assistant.id, update_mask=field_mask_pb2.FieldMask(paths=["model"])
            )
        ),
        "model",
    )
    await invalid_field(
        stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(assistant_id=assistant.id, top_p=1.5)
        ),
        "top_p",
    )
    # A refused update changes nothing.
    fetched = await stubs.assistants.GetAssistant(pb.GetAssistantRequest(assistant_id=assistant.id))
    assert fetched.assistant == assistant


async def test_update_can_switch_to_another_served_model(stubs: Stubs) -> None:
    assistant = (await create(stubs)).assistant
    updated = await stubs.assistants.UpdateAssistant(
        pb.UpdateAssistantRequest(assistant_id=assistant.id, model="scripted-other")
    )
    assert updated.assistant.model == "scripted-other"
    await invalid_field(
        stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(assistant_id=assistant.id, model="nobody-serves-this")
        ),
        "model",
    )


async def test_delete_removes_the_assistant(stubs: Stubs) -> None:
    assistant = (await create(stubs)).assistant
    deleted = await stubs.assistants.DeleteAssistant(
        pb.DeleteAssistantRequest(assistant_id=assistant.id)
    )
    assert (deleted.id, deleted.object, deleted.deleted) == (
        assistant.id,
        "assistant.deleted",
        True,
    )
    await not_found(
        stubs.assistants.GetAssistant(pb.GetAssistantRequest(assistant_id=assistant.id)),
        assistant.id,
    )
    await not_found(
        stubs.assistants.DeleteAssistant(pb.DeleteAssistantRequest(assistant_id=assistant.id)),
        assistant.id,
    )
    await not_found(
        stubs.assistants.UpdateAssistant(
            pb.UpdateAssistantRequest(assistant_id=assistant.id, name="x")
        ),
        assistant.id,
    )
    listed = await stubs.assistants.ListAssistants(pb.ListAssistantsRequest())
    assert assistant.id not in [a.id for a in listed.data]


async def test_list_returns_newest_first_with_the_list_envelope(stubs: Stubs) -> None:
    ids = [(await create(stubs, name=f"a{i}")).assistant.id for i in range(3)]
    listed = await stubs.assistants.ListAssistants(pb.ListAssistantsRequest())
    assert listed.object == "list"
    assert [a.id for a in listed.data] == ids[::-1]
    assert (listed.first_id, listed.last_id, listed.has_more) == (ids[-1], ids[0], False)
    ascending = await stubs.assistants.ListAssistants(pb.ListAssistantsRequest(order="asc"))
    assert [a.id for a in ascending.data] == ids
