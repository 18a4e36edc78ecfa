"""The Quick Start against a running server, with the Python client library.

Finds (or creates) an assistant, starts a thread, adds a message and streams the run's reply as
it is written; then asks a question the assistant answers by calling a function, runs the
function here and submits its output, and prints the final answer.

    ASSISTANTS_GRPC_TARGET  host:port of the server (default 127.0.0.1:50051)
    ASSISTANTS_API_KEY      sent as `authorization: Bearer <key>` when set
    ASSISTANTS_MODEL        the model of a new assistant (default scripted-demo)

Install the client with `pip install ./clients/python`, start a server with
`assistants-grpc serve`, then run `python examples/python/quickstart.py`. It exits non-zero
when a call fails, a run does not complete, or the model calls no function, so it doubles as a
smoke test.
"""

from __future__ import annotations

import json
import os
import sys

from assistants.v1 import run_pb2
from assistants_client import (
    AssistantsClient,
    AssistantsError,
    RunStream,
    ToolOutputParam,
    message_text,
)

MODEL = os.environ.get("ASSISTANTS_MODEL", "scripted-demo")

# The function the model may call, as an OpenAI tool.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name."}},
            "required": ["city"],
        },
    },
}


class QuickstartError(Exception):
    pass


def get_weather(arguments_json: str) -> str:
    """What the function returns; a real program would look the weather up."""
    try:
        arguments = json.loads(arguments_json or "{}")
    except ValueError:
        arguments = {}
    city = arguments.get("city") if isinstance(arguments, dict) else None
    return json.dumps(
        {
            "city": city if isinstance(city, str) else "unknown",
            "temperature_c": 21,
            "conditions": "sunny",
        }
    )


def call_function(name: str, arguments_json: str) -> str:
    if name == "get_weather":
        return get_weather(arguments_json)
    return json.dumps({"error": f"no function named {name}"})


def print_reply(stream: RunStream) -> tuple[run_pb2.Run, str]:
    """Prints the run's text as it arrives; returns the run as the stream ended and the text."""
    with stream:
        text = ""
        for piece in stream.text_deltas():
            print(piece, end="", flush=True)
            text += piece
        run = stream.until_done()
    if text:
        print()
    return run, text


def run_to_completion(client: AssistantsClient, stream: RunStream) -> tuple[int, str]:
    """Follows a run through its function calls: each time it waits for tool outputs, calls the
    functions and submits their outputs, streaming on. Returns how many calls were answered and
    the text of the last reply."""
    run, text = print_reply(stream)
    calls = 0
    while run.status == "requires_action":
        tool_outputs: list[ToolOutputParam] = []
        for call in run.required_action.submit_tool_outputs.tool_calls:
            output = call_function(call.function.name, call.function.arguments)
            print(
                f"tool call {call.id}: {call.function.name}({call.function.arguments}) -> {output}"
            )
            tool_outputs.append({"tool_call_id": call.id, "output": output})
        calls += len(tool_outputs)
        run, text = print_reply(
            client.submit_tool_outputs_stream(run.thread_id, run.id, tool_outputs=tool_outputs)
        )
    if run.status != "completed":
        reason = f": {run.last_error.code} {run.last_error.message}" if run.last_error.code else ""
        raise QuickstartError(f"run {run.id} ended {run.status}{reason}")
    return calls, text


def main() -> None:
    with AssistantsClient() as client:
        # Get the assistant: the first one on the model, or a new one.
        assistants = client.get_assistants()
        assistant = next((a for a in assistants.data if a.model == MODEL), None)
        if assistant is None:
            assistant = client.create_assistant(
                model=MODEL, name="Quick Start", instructions="You are a helpful assistant."
            )
        print(f"assistant {assistant.id} ({len(assistants.data)} listed)")

        # Create a thread, add a message, run the assistant and stream its reply.
        thread = client.create_thread()
        client.add_message(thread.id, role="user", content="Hello! What can you do?")
        print(f"thread {thread.id}; streaming the reply:")
        run_to_completion(client, client.run_thread_stream(thread.id, assistant_id=assistant.id))

        # Ask again with a function the model may call for this run.
        client.add_message(thread.id, role="user", content="What is the weather in Paris?")
        print("asking about the weather, with get_weather:")
        calls, answer = run_to_completion(
            client,
            client.run_thread_stream(thread.id, assistant_id=assistant.id, tools=[WEATHER_TOOL]),
        )
        if calls == 0:
            raise QuickstartError(f"model {MODEL} answered without calling get_weather")
        print(f"final answer: {answer}")

        # The thread now holds the whole conversation.
        for message in client.iter_messages(thread.id, order="asc"):
            print(f"  {message.role}: {message_text(message)}")


if __name__ == "__main__":
    try:
        main()
    except (AssistantsError, QuickstartError) as error:
        print(f"quickstart: {error}", file=sys.stderr)
        sys.exit(1)
