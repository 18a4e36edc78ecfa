"""Fixtures of the client tests: a real in-process server whose scripted models call
functions, and the script that makes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..support.servers import in_process_server, server_settings

# The scripted model of these tests: it calls get_weather when asked about the weather, answers
# with the tool's output once it has it, writes slowly when asked to, and otherwise echoes.
TOOL_SCRIPT = """
turns:
  - when: {after_tool_output: true}
    reply: "The tool returned: {last_tool_output}"
  - when: {last_user_message_contains: weather}
    tool_calls:
      - name: get_weather
        arguments: {city: Paris}
  - when: {last_user_message_contains: slowly}
    reply: "one two three four five six seven eight nine ten"
    token_delay_ms: 50
  - reply: "You said: {last_user_message}"
"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def write_tool_script(folder: Path) -> Path:
    path = folder / "tool-script.yaml"
    path.write_text(TOOL_SCRIPT, encoding="utf-8")
    return path


def scripted_models(script: Path) -> str:
    """The inline model list that serves every `scripted*` model from `script`."""
    return json.dumps([{"name": "scripted*", "provider": "scripted", "script": str(script)}])


@pytest.fixture
async def target(sqlite_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """host:port of a fresh in-process server with the tool script."""
    settings = server_settings(sqlite_url, models=scripted_models(write_tool_script(tmp_path)))
    async with in_process_server(settings) as (app, _stubs):
        yield f"127.0.0.1:{app.port}"
