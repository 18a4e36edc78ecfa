"""Reads the API key from a call's `authorization: Bearer <key>` metadata."""

from __future__ import annotations

from assistants_grpc.application.api_keys import ApiKeys
from assistants_grpc.domain.errors import Unauthenticated
from assistants_grpc.transport.interceptors import Authenticate

BEARER_SCHEME = "bearer"


def bearer_token(authorization: str | None) -> str | None:
    """The key in an `authorization` value, or None when the call carries none.

    The scheme is case-insensitive, as in HTTP; anything but `Bearer <key>` is refused rather
    than treated as "no key", so that a client with a broken header learns so at once.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER_SCHEME or not token or " " in token:
        raise Unauthenticated(
            "The authorization metadata must be `Bearer <key>`.",
            reason="AUTHORIZATION_MALFORMED",
        )
    return token


def bearer_authenticator(keys: ApiKeys) -> Authenticate:
    """The interceptor's `Authenticate`: header in, project id out."""

    async def authenticate(authorization: str | None) -> str:
        return await keys.authenticate(bearer_token(authorization))

    return authenticate
