"""Object identifiers: OpenAI's prefixes followed by 24 random URL-safe characters."""

from __future__ import annotations

import secrets
import string

from assistants_grpc.domain.errors import InvalidArgument

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 24
_BASE = len(_ALPHABET)
_RANDOM_BITS = 256
_MAX_ID_LENGTH = 64


class IdPrefix:
    ASSISTANT = "asst_"
    THREAD = "thread_"
    MESSAGE = "msg_"
    RUN = "run_"
    STEP = "step_"
    TOOL_CALL = "call_"


def new_id(prefix: str) -> str:
    # One draw of 256 random bits written in base 62, rather than one draw (and one getrandom
    # system call) per character: 62**24 is below 2**143, so the 24 digits are uniform to
    # within 62**24 / 2**256 (about 1e-34).
    value = secrets.randbits(_RANDOM_BITS)
    characters = []
    for _ in range(_RANDOM_LENGTH):
        value, digit = divmod(value, _BASE)
        characters.append(_ALPHABET[digit])
    return prefix + "".join(characters)


def check_id(value: str, prefix: str, field: str, *, required: bool = True) -> str:
    """Reject a missing id, a wrong prefix or a malformed id with a violation naming `field`."""
    if not value:
        if required:
            raise InvalidArgument.field(field, "is required")
        return value
    if not value.startswith(prefix):
        raise InvalidArgument.field(field, f"must be an id starting with '{prefix}'")
    body = value[len(prefix) :]
    if not body or len(value) > _MAX_ID_LENGTH or not body.isascii() or not body.isalnum():
        raise InvalidArgument.field(field, "is not a well-formed id")
    return value
