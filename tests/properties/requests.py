"""Hypothesis strategies for any request of the contract, built from its message descriptor.

Nothing here names a particular RPC: fields are filled by type, and by name where the name says
what the value means (ids, models, enumerated strings such as `type` or `order`). So a field or
RPC added to the contract is exercised without touching this file.

The values mix the valid with the invalid: real ids and ids with wrong prefixes, strings just
over each OpenAI limit, repeated fields over their caps, metadata with too many or too long
pairs, JSON schemas nested or sized beyond any sensible schema, unknown enumerated strings,
oneofs present but empty, extreme numbers and random unicode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

if TYPE_CHECKING:
    from google._upb import _message as upb

    # The stubs type descriptors of the pure-Python and the upb runtime apart.
    Field: TypeAlias = FieldDescriptor | upb.FieldDescriptor
    Oneof: TypeAlias = OneofDescriptor | upb.OneofDescriptor

ID_PREFIXES = ("asst_", "thread_", "msg_", "run_", "step_", "call_", "file-", "vs_", "key_")
CHOICES = (
    "function",
    "code_interpreter",
    "file_search",
    "auto",
    "text",
    "json_object",
    "json_schema",
    "none",
    "required",
    "user",
    "assistant",
    "system",
    "minimal",
    "low",
    "medium",
    "high",
    "default_2024_08_21",
    "last_messages",
    "image_file",
    "image_url",
    "refusal",
    "asc",
    "desc",
    "get_weather",
)
"""Values the contract's enumerated strings take, next to which random ones are tried."""
CHOICE_FIELDS = frozenset(
    {"type", "mode", "role", "reasoning_effort", "ranker", "detail", "order", "name"}
)
MODELS = ("scripted", "scripted-mini", "unknown-model", "gpt-4o")
URLS = (
    "https://images.invalid/cat.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "ftp://images.invalid/cat.png",
    "not a url",
)
# Just over the limits of names (64, 256), descriptions (512, 1024) and URLs (8192); and over
# those of instructions and message text (256,000) and tool outputs (512,000), which are long
# enough that a request holds at most one of them (see _Filler).
OVER_LIMIT_LENGTHS = (65, 257, 513, 1_025, 8_193)
HUGE_LENGTHS = (256_001, 512_001)
# Over the caps on metadata pairs (16), run tools (20), thread messages (32), content parts (64)
# and assistant tools (128).
OVER_LIMIT_COUNTS = (17, 21, 33, 65, 129)
EDGE_INTEGERS = (0, 1, -1, 2, 20, 100, 101, 255, 256, 2**31 - 1, -(2**31))
MAX_NESTING = 4
"""How deep ordinary messages nest; JSON schemas have their own, far deeper, cases."""
SCHEMA_DEPTHS = (5, 31, 33, 60, 150)
HUGE_SCHEMA_NODES = 10_001


UNICODE = st.characters(codec="utf-8")
"""Any character that can travel in a protobuf string (all but lone surrogates)."""


def _is_map(field: Field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_synthetic(oneof: Oneof) -> bool:
    """proto3 `optional` fields sit in a oneof of their own, which is not a real choice."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def texts(huge: bool = False) -> st.SearchStrategy[str]:
    lengths = OVER_LIMIT_LENGTHS + HUGE_LENGTHS if huge else OVER_LIMIT_LENGTHS
    return st.one_of(
        st.text(UNICODE, max_size=40),
        st.sampled_from(lengths).map(lambda n: "x" * n),
        # Multi-byte characters: limits count characters, the wire counts bytes.
        st.text(UNICODE.filter(lambda c: ord(c) >= 0x80), min_size=1, max_size=3).map(
            lambda t: t * 90
        ),
    )


def ids(known: Sequence[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(ID_PREFIXES).map(lambda prefix: prefix + "Q" * 24),
        st.sampled_from(["", "asst_", "run_!!!", "thread_" + "a" * 100, "msg_ x", "step_é"]),
        texts(),
    )


def json_values(leaves_only: bool = False) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(UNICODE, max_size=20),
    )
    if leaves_only:
        return leaves
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(UNICODE, max_size=10), children)
        ),
        max_leaves=12,
    )


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def _huge() -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": i for i in range(HUGE_SCHEMA_NODES)}}


def json_schemas() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({"type": "object", "properties": {"city": {"type": "string"}}}),
        st.dictionaries(st.text(UNICODE, max_size=10), json_values(), max_size=4),
        st.sampled_from(SCHEMA_DEPTHS).map(_nested),
        st.just(_huge()),
    )


# In plausible requests, an id field holds a real id of its kind, found by this prefix.
ID_PREFIX_OF_FIELD = {
    "assistant_id": "asst_",
    "thread_id": "thread_",
    "message_id": "msg_",
    "run_id": "run_",
    "step_id": "step_",
    "tool_call_id": "call_",
}
PLAUSIBLE_CHOICES = {
    "role": ("user", "assistant"),
    "order": ("asc", "desc", ""),
    "reasoning_effort": ("low", "medium", "high"),
    "mode": ("none", "auto", "required"),
    "detail": ("auto", "low", "high"),
    "ranker": ("auto",),
    # Empty: the oneof variant that is set names the type.
    "type": ("",),
    "name": ("get_weather", "helper"),
}
PLAUSIBLE_CHOICES_IN = {
    ("assistants.v1.TruncationStrategy", "type"): ("auto", "last_messages"),
    ("assistants.v1.NamedToolChoice", "type"): ("function",),
    ("assistants.v1.AttachmentTool", "type"): ("code_interpreter", "file_search"),
}
PLAUSIBLE_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def _hostile_scalar(field: Field, known: Sequence[str], huge: bool) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        name = field.name
        if name.endswith(("_id", "_ids")) or name in ("after", "before"):
            return ids(known)
        if name == "model":
            return st.one_of(st.sampled_from(MODELS), texts())
        if name == "url":
            return st.one_of(st.sampled_from(URLS), texts())
        if name in CHOICE_FIELDS:
            return st.one_of(st.sampled_from(CHOICES), texts())
        return texts(huge)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(
            st.sampled_from([0.0, 1.0, 2.0, 2.0001, -0.0, -1.0]),
            st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64),
        )
    if kind == FieldDescriptor.TYPE_ENUM:
        # proto3 enums are open: numbers the contract does not define must be handled too.
        return st.integers(-3, 50)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return st.one_of(st.sampled_from(EDGE_INTEGERS), st.integers(-(2**63), 2**63 - 1))
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.one_of(st.sampled_from(EDGE_INTEGERS), st.integers(-(2**31), 2**31 - 1))


def _plausible_scalar(field: Field, known: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    name = field.name
    if kind == FieldDescriptor.TYPE_STRING:
        prefix = ID_PREFIX_OF_FIELD.get(name)
        if prefix is not None:
            of_kind = [k for k in known if k.startswith(prefix)]
            return st.sampled_from(of_kind or [prefix + "Q" * 24])
        if name in ("after", "before"):
            return st.just("")
        if name.endswith(("_id", "_ids")):
            return st.just("file-abc123")
        if name == "model":
            return st.just("scripted")
        if name == "url":
            return st.just(URLS[0])
        container = field.containing_type.full_name if field.containing_type else ""
        choices = PLAUSIBLE_CHOICES_IN.get((container, name))
        if choices is None:
            choices = PLAUSIBLE_CHOICES.get(name)
        if choices is not None:
            return st.sampled_from(choices)
        return printable(30)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(0, 1)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([value.number for value in field.enum_type.values])
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    if name == "limit":
        return st.integers(1, 100)
    if "tokens" in name:
        return st.integers(256, 4096)
    return st.integers(0, 10)


class _Filler:
    """Fills a message in place, field by field, with values drawn from hypothesis.

    A plausible filler stays within the contract (real ids of the right kind, values within
    limits), so that requests get past validation and into the use cases; a hostile one uses
    every kind of bad value."""

    def __init__(self, draw: st.DrawFn, known: Sequence[str], plausible: bool) -> None:
        self._draw = draw
        self._known = known
        self._plausible = plausible
        # One string of hundreds of kilobytes per request shows the limit is enforced; more
        # (or copies of one in a repeated field) would only slow every example down.
        self._huge_left = 1
        self._copying = False

    def fill(self, message: Message, depth: int) -> None:
        descriptor = message.DESCRIPTOR
        chosen_in_oneofs: set[str] = set()
        for oneof in descriptor.oneofs:
            if _is_synthetic(oneof):
                continue
            # None leaves the oneof unset; a member may still come out empty (set, no content).
            members = list(oneof.fields) if self._plausible else [None, *oneof.fields]
            member = self._draw(st.sampled_from(members))
            if member is not None:
                chosen_in_oneofs.add(member.name)
        for field in descriptor.fields:
            containing = field.containing_oneof
            if containing is not None and not _is_synthetic(containing):
                if field.name in chosen_in_oneofs:
                    self._set(message, field, depth)
                continue
            # Plausible requests always name their objects (ids are required nearly everywhere).
            required = self._plausible and field.name in ID_PREFIX_OF_FIELD
            if required or self._draw(st.booleans()):
                self._set(message, field, depth)

    def _scalar(self, field: Field) -> st.SearchStrategy[Any]:
        if self._plausible:
            return _plausible_scalar(field, self._known)
        huge = self._huge_left > 0 and not self._copying
        return _hostile_scalar(field, self._known, huge)

    def _count(self) -> int:
        if self._plausible:
            return self._draw(st.integers(0, 2))
        # Over-limit counts nest no further: 129 messages of 129 attachments each would only
        # measure how fast gRPC refuses a request of many megabytes.
        counts = st.integers(0, 3)
        if not self._copying:
            counts = st.one_of(counts, st.sampled_from(OVER_LIMIT_COUNTS))
        return self._draw(counts)

    def _set(self, message: Message, field: Field, depth: int) -> None:
        draw = self._draw
        if _is_map(field):
            entry = field.message_type
            assert entry is not None
            key = self._scalar(entry.fields_by_name["key"])
            value = self._scalar(entry.fields_by_name["value"])
            pairs = st.dictionaries(key, value, max_size=3)
            if not self._plausible:
                pairs = st.one_of(
                    pairs,
                    st.sampled_from(OVER_LIMIT_COUNTS).map(
                        lambda n: {f"k{i}": "v" for i in range(n)}
                    ),
                )
            getattr(message, field.name).update(draw(pairs))
        elif field.is_repeated and field.message_type is not None:
            container = getattr(message, field.name)
            count = self._count()
            if count and depth < MAX_NESTING:
                first = container.add()
                copying, self._copying = self._copying, count > 1
                self._message(first, message, depth + 1)
                self._copying = copying
                for _ in range(count - 1):
                    container.add().MergeFrom(first)
        elif field.is_repeated:
            values = draw(st.lists(self._scalar(field), max_size=3))
            getattr(message, field.name).extend(values)
        elif field.message_type is not None:
            target = getattr(message, field.name)
            target.SetInParent()
            if depth < MAX_NESTING and draw(st.booleans()):
                self._message(target, message, depth + 1)
        else:
            value = draw(self._scalar(field))
            if isinstance(value, str) and len(value) > max(OVER_LIMIT_LENGTHS):
                self._huge_left -= 1
            setattr(message, field.name, value)

    def _message(self, message: Message, parent: Message, depth: int) -> None:
        name = message.DESCRIPTOR.full_name
        if name == "google.protobuf.Struct":
            schema = PLAUSIBLE_SCHEMA if self._plausible else self._draw(json_schemas())
            message.update(schema)  # type: ignore[attr-defined]
        elif name == "google.protobuf.FieldMask":
            siblings = [f.name for f in parent.DESCRIPTOR.fields]
            choices = siblings if self._plausible else ["", "nope", "metadata.key", *siblings]
            paths = self._draw(st.lists(st.sampled_from(choices), max_size=3))
            message.paths.extend(paths)  # type: ignore[attr-defined]
        else:
            self.fill(message, depth)


def requests(descriptor: Descriptor, known: Sequence[str]) -> st.SearchStrategy[Message]:
    """Requests of type `descriptor`, plausible or hostile in equal measure; `known` are ids
    of real objects to use."""
    message_class = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_class()
        _Filler(draw, known, plausible=draw(st.booleans())).fill(message, 0)
        return message

    return build()


def printable(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=max_size)


def call_metadata() -> st.SearchStrategy[list[tuple[str, str]]]:
    """gRPC metadata: none most of the time, else request ids (some long) and stray headers,
    and now and then an authorization header (which this open server must still check).
    Metadata over gRPC's 16 KiB limit is refused by gRPC before any of our code runs, and
    slowly: test_every_rpc checks it once per kind of call rather than here."""
    benign = st.one_of(
        st.tuples(st.just("x-request-id"), printable(80)),
        st.tuples(st.just("x-request-id"), st.just("r" * 4_000)),
        st.tuples(st.sampled_from(["x-client", "x-trace"]), printable(40)),
    )
    authorization = st.tuples(
        st.just("authorization"), st.one_of(printable(60), st.just("Bearer sk-asst-x"))
    )
    return st.one_of(
        st.just([]),
        st.just([]),
        st.lists(benign, min_size=1, max_size=3),
        st.lists(st.one_of(benign, authorization), min_size=1, max_size=2),
    )
