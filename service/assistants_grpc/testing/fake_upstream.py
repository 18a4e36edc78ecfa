"""An OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It answers `POST /v1/chat/completions` and Azure's
`POST /openai/deployments/{deployment}/chat/completions?api-version=...`, streamed (SSE chunks
ending with `data: [DONE]`, usage in a last chunk when `stream_options.include_usage` is set) or
not, with generated text, scripted text or (parallel) tool calls. It honours
`max_completion_tokens` (and the older `max_tokens`) by stopping with `finish_reason: "length"`.

In process, from an async test::

    async with FakeUpstream(reply_tokens=5) as upstream:
        upstream.enqueue(Behaviour.rate_limit(retry_after=0.1), Behaviour.reply("hi"))
        ...  # point an SDK client at upstream.base_url (or upstream.azure_endpoint)
        assert upstream.request_count == 2

As a separate process (benchmarks)::

    python -m assistants_grpc.testing.fake_upstream --port 0 --reply-tokens 50 --token-delay-ms 0

prints its base URL (`http://127.0.0.1:PORT/v1`) as the first line on stdout and serves until
SIGINT/SIGTERM.

Choosing a behaviour, first match wins:

1. the request header `x-fake-behaviour: SPEC`;
2. a model name ending in `@SPEC` (`gpt-4o@429`, `local@slow=2,tokens=5`), which lets a service
   configured with a fixed model exercise faults without sending headers;
3. the queue of behaviours for the next requests: `FakeUpstream.enqueue(...)` in process, or
   `POST /_fake/behaviours` with a JSON list of SPEC strings from another process;
4. the server's default (`--default-behaviour SPEC`, otherwise a generated text reply).

SPEC is a comma-separated list of `key` or `key=value` items (see `Behaviour.parse`):
`429`, `rate_limit=SECONDS` (429 with that retry-after), `500` or any other status code,
`status=CODE`, `retry_after=SECONDS`, `retry_after_ms` (also send `retry-after-ms`),
`message=TEXT` (of an error), `slow=SECONDS` (delay before the first byte), `hang` (never answer;
the handler ends when the client goes away), `malformed=N` (an invalid JSON chunk after N chunks),
`drop=N` (abort the connection after N chunks), `stall=N` (send nothing more after N chunks
until the client goes away), `error_event=N` (an `{"error": ...}` event instead of the rest after
N chunks), `no_finish` (end the stream without a finish_reason), `tokens=N`, `delay_ms=MS` (each
token chunk MS after the one before), `tools=N` (N parallel calls of the request's first tool, or
text when the last message is a tool result), `text=WORDS` and `finish=REASON`. `ok` or an empty
SPEC is the default reply.

The other control routes: `GET /_fake/health`, `GET /_fake/requests` (count, disconnects and the
last recorded bodies) and `POST /_fake/reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

import msgspec
from aiohttp import web

BEHAVIOUR_HEADER = "x-fake-behaviour"

_WORDS = ("The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "again", "today")
_PIECE = re.compile(r"\s*\S+|\s+")
_MALFORMED_CHUNK = b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
_DONE = b"data: [DONE]\n\n"
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A function call the fake answers with; `arguments` is streamed in several pieces."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the fake does with one request. Fields combine: `slow` plus `drop_after` is valid."""

    status: int = 200
    """Anything but 200 answers with an OpenAI-style error body and this status."""
    retry_after: float | None = None
    """Seconds sent in the `retry-after` header of an error answer."""
    retry_after_ms: bool = False
    """Also send `retry-after-ms`, as OpenAI does."""
    message: str | None = None
    """The error message of an error answer; None picks a typical one for the status."""
    delay_seconds: float = 0.0
    """Wait this long before the first byte of the answer."""
    hang: bool = False
    """Never answer; the request ends only when the client disconnects."""
    text: str | None = None
    """The reply text; None means a generated reply of `tokens` words."""
    tokens: int | None = None
    """The generated reply's length in words; None uses the server's default."""
    token_delay_ms: float | None = None
    """Pause between streamed chunks; None uses the server's default."""
    tool_calls: tuple[FakeToolCall, ...] = ()
    """Answer with these function calls (after `text`, when both are given)."""
    auto_tool_calls: int = 0
    """Answer with this many calls of the request's first tool, unless a tool result is last."""
    finish_reason: str | None = None
    """Override the finish reason the fake would pick."""
    malformed_after: int | None = None
    """Send an invalid JSON chunk after this many chunks."""
    drop_after: int | None = None
    """Abort the connection after this many chunks (0: right after the headers)."""
    stall_after: int | None = None
    """Stop sending after this many chunks, keeping the connection open until the client leaves."""
    error_event_after: int | None = None
    """Send an `{"error": ...}` event after this many chunks, as some servers do mid-stream."""
    omit_finish: bool = False
    """End the stream (with [DONE]) without ever sending a finish_reason."""

    @classmethod
    def reply(
        cls, text: str | None = None, *, tool_calls: Sequence[FakeToolCall] = (), **more: Any
    ) -> Behaviour:
        return cls(text=text, tool_calls=tuple(tool_calls), **more)

    @classmethod
    def rate_limit(cls, retry_after: float | None = None, *, retry_after_ms: bool = False) -> Self:
        return cls(status=429, retry_after=retry_after, retry_after_ms=retry_after_ms)

    @classmethod
    def error(cls, status: int = 500) -> Self:
        return cls(status=status)

    @classmethod
    def slow(cls, seconds: float) -> Self:
        return cls(delay_seconds=seconds)

    @classmethod
    def hanging(cls) -> Self:
        return cls(hang=True)

    @classmethod
    def malformed(cls, after_chunks: int = 2) -> Self:
        return cls(malformed_after=after_chunks)

    @classmethod
    def dropped(cls, after_chunks: int = 2) -> Self:
        return cls(drop_after=after_chunks)

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """Build a behaviour from a SPEC string (see the module docstring)."""
        behaviour = cls()
        for item in (part.strip() for part in spec.split(",")):
            if not item or item == "ok":
                continue
            key, _, value = item.partition("=")
            try:
                behaviour = _apply_spec_item(behaviour, key.strip().lower(), value.strip())
            except ValueError as error:
                raise ValueError(f"bad fake behaviour {item!r}: {error}") from None
        return behaviour


def _apply_spec_item(behaviour: Behaviour, key: str, value: str) -> Behaviour:
    if key.isdigit():
        return replace(behaviour, status=int(key))
    match key:
        case "status":
            return replace(behaviour, status=int(value))
        case "rate_limit":
            return replace(behaviour, status=429, retry_after=float(value) if value else None)
        case "retry_after":
            return replace(behaviour, retry_after=float(value))
        case "retry_after_ms":
            return replace(behaviour, retry_after_ms=True)
        case "slow":
            return replace(behaviour, delay_seconds=float(value))
        case "hang":
            return replace(behaviour, hang=True)
        case "malformed":
            return replace(behaviour, malformed_after=int(value or "2"))
        case "drop":
            return replace(behaviour, drop_after=int(value or "2"))
        case "stall":
            return replace(behaviour, stall_after=int(value or "2"))
        case "error_event":
            return replace(behaviour, error_event_after=int(value or "2"))
        case "no_finish":
            return replace(behaviour, omit_finish=True)
        case "tokens":
            return replace(behaviour, tokens=int(value))
        case "delay_ms":
            return replace(behaviour, token_delay_ms=float(value))
        case "tools":
            return replace(behaviour, auto_tool_calls=int(value or "1"))
        case "text":
            return replace(behaviour, text=value)
        case "finish":
            return replace(behaviour, finish_reason=value)
        case "message":
            return replace(behaviour, message=value)
    raise ValueError("unknown key")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    deployment: str | None = None
    """The Azure deployment named in the path, for Azure-style requests."""


@dataclass(slots=True)
class _Completion:
    """What one answer consists of, before it is encoded."""

    text_pieces: list[str]
    tool_calls: list[tuple[str, str, list[str]]]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class _Stats:
    request_count: int = 0
    disconnects: int = 0
    recorded: deque[RecordedRequest] = field(default_factory=deque)


class FakeUpstream:
    """The fake server; an async context manager that starts it on a free port of 127.0.0.1."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reply_tokens: int = 8,
        token_delay_ms: float = 0.0,
        default_behaviour: Behaviour | None = None,
        record_limit: int | None = 10_000,
        required_api_key: str | None = None,
    ) -> None:
        """`record_limit` bounds how many request bodies are kept (None: all of them).

        With `required_api_key`, requests without that key (as `Authorization: Bearer` or Azure's
        `api-key` header) are answered with 401.
        """
        self._host = host
        self._port = port
        self._reply_tokens = reply_tokens
        self._token_delay = token_delay_ms / 1000
        self._default = default_behaviour or Behaviour()
        self._required_api_key = required_api_key
        self._queue: deque[Behaviour] = deque()
        self._stats = _Stats(recorded=deque(maxlen=record_limit))
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_openai)
        app.router.add_post("/chat/completions", self._handle_openai)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._handle_azure)
        app.router.add_get("/_fake/health", self._handle_health)
        app.router.add_get("/_fake/requests", self._handle_requests)
        app.router.add_post("/_fake/behaviours", self._handle_enqueue)
        app.router.add_post("/_fake/reset", self._handle_reset)
        # Handler cancellation is how a hanging request learns that its client went away.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, backlog=1024)
        await site.start()
        self._bound_port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests use --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the fake upstream is not started")
        return self._bound_port

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in /v1."""
        return f"{self.origin}/v1"

    @property
    def azure_endpoint(self) -> str:
        """What to pass as `azure_endpoint` to an Azure client."""
        return self.origin

    @property
    def request_count(self) -> int:
        return self._stats.request_count

    @property
    def disconnects(self) -> int:
        """Requests whose client went away before the answer was complete."""
        return self._stats.disconnects

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._stats.recorded)

    @property
    def last_request(self) -> RecordedRequest:
        return self._stats.recorded[-1]

    def enqueue(self, *behaviours: Behaviour | str) -> None:
        """Use these behaviours, in order, for the next requests (then the default again)."""
        for behaviour in behaviours:
            parsed = Behaviour.parse(behaviour) if isinstance(behaviour, str) else behaviour
            self._queue.append(parsed)

    def reset(self) -> None:
        self._queue.clear()
        self._stats.request_count = 0
        self._stats.disconnects = 0
        self._stats.recorded.clear()

    async def wait_for_disconnects(self, count: int = 1, within_seconds: float = 5.0) -> None:
        """Return once `count` disconnects were seen; raise TimeoutError otherwise."""
        await self._wait_until(lambda: self._stats.disconnects >= count, within_seconds)

    async def wait_for_requests(self, count: int, within_seconds: float = 5.0) -> None:
        await self._wait_until(lambda: self._stats.request_count >= count, within_seconds)

    async def _wait_until(self, predicate: Callable[[], bool], within_seconds: float) -> None:
        if predicate():
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (predicate, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(within_seconds):
                await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _notify(self) -> None:
        if not self._waiters:
            return
        for entry in list(self._waiters):
            predicate, waiter = entry
            if predicate():
                self._waiters.remove(entry)
                if not waiter.done():
                    waiter.set_result(None)

    # -- request handling ------------------------------------------------------------------------

    async def _handle_openai(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_chat(request, deployment=None)

    async def _handle_azure(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_chat(request, deployment=request.match_info["deployment"])

    async def _handle_chat(
        self, request: web.Request, deployment: str | None
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = _json_decode(raw)
        except msgspec.DecodeError:
            body = None
        headers = {key.lower(): value for key, value in request.headers.items()}
        self._stats.request_count += 1
        self._stats.recorded.append(
            RecordedRequest(
                path=request.path,
                query=dict(request.query),
                headers=headers,
                body=body if isinstance(body, dict) else {},
                deployment=deployment,
            )
        )
        self._notify()
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error_response(400, "The request body must be a JSON object with messages.")
        if self._required_api_key is not None and not self._authorized(headers):
            return _error_response(401, "Incorrect API key provided.", kind="invalid_api_key")
        try:
            behaviour = self._choose(headers, body)
        except ValueError as error:
            return _error_response(400, str(error))
        try:
            return await self._answer(request, body, behaviour)
        except (asyncio.CancelledError, ConnectionResetError):
            self._stats.disconnects += 1
            self._notify()
            raise

    def _authorized(self, headers: dict[str, str]) -> bool:
        key = self._required_api_key
        return headers.get("authorization") == f"Bearer {key}" or headers.get("api-key") == key

    def _choose(self, headers: dict[str, str], body: dict[str, Any]) -> Behaviour:
        spec = headers.get(BEHAVIOUR_HEADER)
        if spec is not None:
            return Behaviour.parse(spec)
        model = body.get("model")
        if isinstance(model, str) and "@" in model:
            return Behaviour.parse(model.rpartition("@")[2])
        if self._queue:
            return self._queue.popleft()
        return self._default

    async def _answer(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        if behaviour.delay_seconds > 0:
            await asyncio.sleep(behaviour.delay_seconds)
        if behaviour.hang:
            await asyncio.Event().wait()
        if behaviour.status != 200:
            return _error_response(
                behaviour.status,
                behaviour.message
                or _STATUS_MESSAGES.get(behaviour.status, "The fake upstream failed this request."),
                kind="rate_limit_exceeded" if behaviour.status == 429 else None,
                retry_after=behaviour.retry_after,
                retry_after_ms=behaviour.retry_after_ms,
            )
        completion = self._compose(body, behaviour)
        model = str(body.get("model", ""))
        delay = (
            self._token_delay
            if behaviour.token_delay_ms is None
            else behaviour.token_delay_ms / 1000
        )
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = self._stream_chunks(completion, model, behaviour, include_usage=include_usage)
            tokens = len(completion.text_pieces) + sum(
                1 + len(parts) for _, _, parts in completion.tool_calls
            )
            return await self._write_stream(request, chunks, delay, behaviour, tokens)
        return await self._write_whole(request, completion, model, behaviour)

    def _compose(self, body: dict[str, Any], behaviour: Behaviour) -> _Completion:
        messages: list[Any] = body["messages"]
        after_tool = (
            bool(messages)
            and isinstance(messages[-1], dict)
            and (messages[-1].get("role") == "tool")
        )
        calls = list(behaviour.tool_calls)
        if not calls and behaviour.auto_tool_calls > 0 and not after_tool:
            name = _first_tool_name(body)
            calls = [
                FakeToolCall(name, f'{{"n": {index}}}')
                for index in range(behaviour.auto_tool_calls)
            ]
        elif not calls and behaviour.text is None and not after_tool:
            forced = _forced_tool_name(body)
            if forced is not None:
                calls = [FakeToolCall(forced, "{}")]

        if behaviour.text is not None:
            pieces = _split_words(behaviour.text)
        elif calls:
            pieces = []
        else:
            count = self._reply_tokens if behaviour.tokens is None else behaviour.tokens
            pieces = [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(count)]

        finish = "tool_calls" if calls else "stop"
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(cap, int) and len(pieces) > cap:
            pieces = pieces[:cap]
            calls = []
            finish = "length"
        if behaviour.finish_reason is not None:
            finish = behaviour.finish_reason

        tool_calls = [
            (f"call_fake{next(self._ids):06d}", call.name, _split_arguments(call.arguments))
            for call in calls
        ]
        completion_tokens = len(pieces) + sum(len(parts) for _, _, parts in tool_calls)
        return _Completion(
            text_pieces=pieces,
            tool_calls=tool_calls,
            finish_reason=None if behaviour.omit_finish else finish,
            prompt_tokens=_estimate_prompt_tokens(messages),
            completion_tokens=completion_tokens,
        )

    def _stream_chunks(
        self, completion: _Completion, model: str, behaviour: Behaviour, *, include_usage: bool
    ) -> list[bytes]:
        completion_id = f"chatcmpl-fake{next(self._ids):08d}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            return b"data: " + _json_encode(payload) + b"\n\n"

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks.extend(chunk({"content": piece}) for piece in completion.text_pieces)
        for index, (call_id, name, parts) in enumerate(completion.tool_calls):
            head = {"index": index, "id": call_id, "type": "function"}
            chunks.append(chunk({"tool_calls": [{**head, "function": {"name": name}}]}))
            chunks.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                for part in parts
            )
        if completion.finish_reason is not None:
            chunks.append(chunk({}, completion.finish_reason))
        if include_usage:
            usage = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": _usage(completion),
            }
            chunks.append(b"data: " + _json_encode(usage) + b"\n\n")
        if behaviour.malformed_after is not None:
            chunks.insert(min(behaviour.malformed_after, len(chunks)), _MALFORMED_CHUNK)
        if behaviour.error_event_after is not None:
            error = {"error": {"message": behaviour.message or "The model overloaded mid-stream."}}
            position = min(behaviour.error_event_after, len(chunks))
            chunks[position:] = [b"data: " + _json_encode(error) + b"\n\n"]
        chunks.append(_DONE)
        return chunks

    async def _write_stream(
        self,
        request: web.Request,
        chunks: list[bytes],
        delay: float,
        behaviour: Behaviour,
        tokens: int,
    ) -> web.StreamResponse:
        """Writes `chunks` (the role chunk, `tokens` token chunks, then the closing ones),
        pacing the tokens `delay` apart."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        cut = behaviour.drop_after if behaviour.drop_after is not None else behaviour.stall_after
        if cut is not None:
            for piece in chunks[:cut]:
                await response.write(piece)
                if delay > 0:
                    await asyncio.sleep(delay)
            if behaviour.drop_after is None:
                await asyncio.Event().wait()
            _abort(request)
            return response
        if delay <= 0:
            # One write keeps the fake cheap when a benchmark wants no pacing.
            await response.write(b"".join(chunks))
        else:
            # As a model sends them: the role chunk at once, token i at i * delay, and the
            # finish, usage and [DONE] chunks right behind the last token. Each chunk is due at
            # a fixed offset from the start, as a model produces tokens on its own clock;
            # sleeping `delay` after each write would let the event loop's wake-up latency pile
            # up over the chunks when many streams are served at once.
            loop = asyncio.get_running_loop()
            started = loop.time()
            for index, piece in enumerate(chunks):
                pause = started + min(index, tokens) * delay - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                await response.write(piece)
        await response.write_eof()
        return response

    async def _write_whole(
        self, request: web.Request, completion: _Completion, model: str, behaviour: Behaviour
    ) -> web.StreamResponse:
        if behaviour.drop_after is not None:
            _abort(request)
            return web.Response()
        if behaviour.stall_after is not None:
            await asyncio.Event().wait()
        if behaviour.malformed_after is not None:
            return web.Response(body=_MALFORMED_CHUNK, content_type="application/json")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(completion.text_pieces) or None,
        }
        if completion.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(parts)},
                }
                for call_id, name, parts in completion.tool_calls
            ]
        payload = {
            "id": f"chatcmpl-fake{next(self._ids):08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": _usage(completion),
        }
        return web.Response(body=_json_encode(payload), content_type="application/json")

    # -- control routes for process mode ---------------------------------------------------------

    async def _handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _handle_requests(self, request: web.Request) -> web.StreamResponse:
        last = int(request.query.get("last", "100"))
        recorded = list(self._stats.recorded)[-last:] if last > 0 else []
        payload = {
            "count": self._stats.request_count,
            "disconnects": self._stats.disconnects,
            "requests": [
                {"path": item.path, "deployment": item.deployment, "body": item.body}
                for item in recorded
            ],
        }
        return web.Response(body=_json_encode(payload), content_type="application/json")

    async def _handle_enqueue(self, request: web.Request) -> web.StreamResponse:
        try:
            specs = _json_decode(await request.read())
            if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
                raise ValueError("expected a JSON list of behaviour strings")
            self.enqueue(*specs)
        except (msgspec.DecodeError, ValueError) as error:
            return _error_response(400, str(error))
        return web.Response(
            body=_json_encode({"queued": len(self._queue)}), content_type="application/json"
        )

    async def _handle_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.Response(text="ok")


_STATUS_MESSAGES = {
    400: "The fake upstream rejected this request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to use this model.",
    404: "The model does not exist.",
    429: "Rate limit reached for requests.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded.",
}


def _error_response(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    retry_after: float | None = None,
    retry_after_ms: bool = False,
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms:
            headers["retry-after-ms"] = str(int(retry_after * 1000))
    error_type = "invalid_request_error" if 400 <= status < 500 else "server_error"
    payload = {
        "error": {"message": message, "type": kind or error_type, "param": None, "code": kind}
    }
    return web.Response(
        status=status,
        body=_json_encode(payload),
        content_type="application/json",
        headers=headers,
    )


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _usage(completion: _Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _split_words(text: str) -> list[str]:
    """Split into word pieces that keep their leading whitespace, so they join back exactly."""
    return _PIECE.findall(text) or ([text] if text else [])


def _split_arguments(arguments: str) -> list[str]:
    """Cut arguments into three pieces at most, as real models stream them in fragments."""
    if len(arguments) < 3:
        return [arguments]
    step = -(-len(arguments) // 3)
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def _estimate_prompt_tokens(messages: Iterable[Any]) -> int:
    chars = 0
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                chars += sum(
                    len(part.get("text", "")) for part in content if isinstance(part, dict)
                )
    return max(1, chars // 4)


def _first_tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        function = tools[0].get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return "fake_tool"


def _forced_tool_name(body: dict[str, Any]) -> str | None:
    """The function named by `tool_choice`, or the first tool when tool_choice is "required"."""
    choice = body.get("tool_choice")
    if choice == "required":
        return _first_tool_name(body)
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m assistants_grpc.testing.fake_upstream",
        description="Serve a fake OpenAI-compatible chat-completions API on the loopback address.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply-tokens", type=int, default=50)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--default-behaviour", default="", metavar="SPEC")
    parser.add_argument("--api-key", default=None, help="answer 401 unless this key is sent")
    parser.add_argument(
        "--record-limit", type=int, default=1000, help="how many request bodies to keep"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    upstream = FakeUpstream(
        host=args.host,
        port=args.port,
        reply_tokens=args.reply_tokens,
        token_delay_ms=args.token_delay_ms,
        default_behaviour=Behaviour.parse(args.default_behaviour),
        record_limit=args.record_limit,
        required_api_key=args.api_key,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with upstream:
        print(upstream.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
