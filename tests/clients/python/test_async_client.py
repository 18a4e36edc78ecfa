"""AsyncAssistantsClient against the real service, in process."""

from __future__ import annotations

import asyncio

import pytest

from assistants_client import (
    AsyncAssistantsClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ToolOutputParam,
    message_text,
)

from ..conftest import WEATHER_TOOL

MODEL = "scripted-demo"


async def test_litellm_quick_start(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assert list((await client.aget_assistants()).data) == []
        created = await client.create_assistant(model=MODEL, name="Helper")
        assistant_id = (await client.aget_assistants()).data[0].id
        assert assistant_id == created.id

        thread = await client.acreate_thread(
            messages=[{"role": "user", "content": "Hey, how's it going?"}]
        )
        assert (await client.aget_thread(thread_id=thread.id)).id == thread.id
        message = {"role": "user", "content": "What can you do?"}
        added = await client.a_add_message(thread_id=thread.id, **message)  # type: ignore[arg-type]
        assert added.role == "user"
        assert message_text(added) == "What can you do?"

        run = await client.arun_thread(thread_id=thread.id, assistant_id=assistant_id)
        assert run.status == "completed"
        newest = (await client.aget_messages(thread_id=thread.id)).data[0]
        assert newest.run_id == run.id
        assert message_text(newest) == "You said: What can you do?"


async def test_stream_adds_deltas_up_to_the_final_messages(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(model=MODEL)
        thread = await client.create_thread()
        await client.add_message(thread.id, role="user", content="Tell me a story")

        async with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            pieces = [piece async for piece in stream.text_deltas()]
            run = await stream.until_done()
        assert run.status == "completed"
        assert stream.state.done
        finished = await stream.final_messages()
        assert [message_text(m) for m in finished] == ["You said: Tell me a story"]
        assert "".join(pieces) == "You said: Tell me a story"
        # The snapshot built from the deltas matches the message as stored.
        stored = await client.get_message(thread.id, finished[0].id)
        assert message_text(stored) == message_text(stream.messages[0])


async def test_events_arrive_in_order_and_awaiting_the_stream_returns_it(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(model=MODEL)
        thread = await client.create_thread(messages=[{"role": "user", "content": "hi"}])
        stream = await client.arun_thread_stream(thread.id, assistant_id=assistant.id)
        async with stream:
            events = [event async for event in stream]
        numbers = [event.sequence_number for event in events]
        assert numbers == list(range(1, len(events) + 1))
        assert events[0].event == "thread.run.created"
        assert events[-1].event == "done"
        assert stream.last_sequence_number == numbers[-1]


async def test_function_call_is_answered_with_submitted_outputs(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(model=MODEL, tools=[WEATHER_TOOL])
        assert assistant.tools[0].function.parameters["required"] == ["city"]
        thread = await client.create_thread(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}]
        )

        async with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            run = await stream.until_done()
        assert run.status == "requires_action"
        (call,) = stream.required_tool_calls
        assert call.function.name == "get_weather"
        assert call.function.arguments == '{"city": "Paris"}'
        # The step's tool call was assembled from its deltas.
        (step,) = stream.steps
        assert step.step_details.tool_calls[0].function.arguments == call.function.arguments

        outputs: list[ToolOutputParam] = [{"tool_call_id": call.id, "output": "sunny"}]
        async with client.submit_tool_outputs_stream(
            thread.id, run.id, tool_outputs=outputs
        ) as answer:
            text = "".join([piece async for piece in answer.text_deltas()])
            final = await answer.until_done()
        assert final.status == "completed"
        assert text == "The tool returned: sunny"

        steps = [s async for s in client.iter_run_steps(thread.id, run.id, order="asc")]
        assert [s.type for s in steps] == ["tool_calls", "message_creation"]
        assert steps[0].step_details.tool_calls[0].function.output == "sunny"


async def test_errors_carry_their_status_details(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.create_assistant(
                model=MODEL,
                name="n" * 300,
                tools=[{"type": "function", "function": {"name": "not a name"}}],
            )
        assert invalid.value.domain == "assistants.v1"
        assert invalid.value.reason
        assert {v.field for v in invalid.value.field_violations} == {
            "name",
            "tools[0].function.name",
        }

        with pytest.raises(NotFoundError) as missing:
            await client.get_thread("thread_missing")
        assert missing.value.resource_type == "thread"
        assert missing.value.resource_name == "thread_missing"

        assistant = await client.create_assistant(model=MODEL)
        thread = await client.create_thread(messages=[{"role": "user", "content": "count slowly"}])
        run = await client.create_run(thread.id, assistant_id=assistant.id)
        with pytest.raises(FailedPreconditionError) as busy:
            await client.create_run(thread.id, assistant_id=assistant.id)
        assert busy.value.reason
        cancelled = await client.cancel_run(thread.id, run.id)
        assert cancelled.status in ("cancelling", "cancelled")
        with pytest.raises(FailedPreconditionError):
            await client.submit_tool_outputs(
                thread.id, run.id, tool_outputs=[{"tool_call_id": "call_x", "output": "-"}]
            )


async def test_iterators_fetch_every_page(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        created = [(await client.create_assistant(model=MODEL, name=f"a{i}")).id for i in range(5)]
        listed = [a.id async for a in client.iter_assistants(page_size=2, order="asc")]
        assert listed == created
        first_page = await client.get_assistants(limit=2, order="asc")
        assert first_page.has_more
        rest = [a.id async for a in client.iter_assistants(after=first_page.last_id, order="asc")]
        assert rest == created[2:]

        thread = await client.create_thread(
            messages=[{"role": "user", "content": str(n)} for n in range(7)]
        )
        texts = [message_text(m) async for m in client.iter_messages(thread.id, page_size=3)]
        assert texts == [str(n) for n in reversed(range(7))]


async def test_update_changes_only_what_is_named(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(
            model=MODEL, name="old", description="kept", metadata={"team": "a"}
        )
        updated = await client.update_assistant(assistant.id, name=None, metadata={"team": "b"})
        assert not updated.HasField("name")
        assert updated.description == "kept"
        assert dict(updated.metadata) == {"team": "b"}

        thread = await client.create_thread(metadata={"k": "v"})
        assert dict((await client.update_thread(thread.id, metadata=None)).metadata) == {}
        assert (await client.delete_thread(thread.id)).deleted
        assert (await client.delete_assistant(assistant.id)).deleted


async def test_a_finished_run_can_be_replayed_and_a_new_thread_streamed(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(model=MODEL)
        async with client.create_thread_and_run_stream(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hello"}]},
        ) as stream:
            first = [event.event async for event in stream]
        assert first[0] == "thread.created"
        assert stream.thread is not None
        run_id = stream.run_id

        async with client.subscribe_run(stream.thread.id, run_id) as replay:
            replayed = [event.event async for event in replay]
            assert (await replay.until_done()).status == "completed"
        assert replayed == first

        runs = [r.id async for r in client.iter_runs(stream.thread.id)]
        assert runs == [run_id]


async def test_a_stream_left_early_leaves_the_run_going(target: str) -> None:
    async with AsyncAssistantsClient(target) as client:
        assistant = await client.create_assistant(model=MODEL)
        thread = await client.create_thread(messages=[{"role": "user", "content": "count slowly"}])
        async with client.run_thread_stream(thread.id, assistant_id=assistant.id) as stream:
            async for piece in stream.text_deltas():
                assert piece
                break
        seen = stream.last_sequence_number
        async with client.subscribe_run(
            thread.id, stream.run_id, after_sequence_number=seen
        ) as rest:
            text = "".join([piece async for piece in rest.text_deltas()])
            run = await asyncio.wait_for(rest.until_done(), 10)
        assert run.status == "completed"
        assert text.endswith("ten")
