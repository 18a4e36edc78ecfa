"""Channels to the service: target, transport security and gRPC's built-in retries.

Retries are gRPC's own (a `retryPolicy` in the channel's service config), so they apply to every
call of every service, back off exponentially with jitter, and never replay a stream that has
already delivered events. Only UNAVAILABLE is retried: the service answers it when a unary call
did not take effect (the server is draining, the database is unreachable) or when no connection
could be made, so repeating such a call is safe even when it creates objects. A commit whose
outcome the service cannot know is answered UNKNOWN (reason COMMIT_OUTCOME_UNKNOWN) instead, and
not retried. One narrow case remains: a streaming call that starts a run (RunThreadStream,
CreateThreadAndRunStream, SubmitToolOutputsStream) answers UNAVAILABLE when the database goes away
after the run was created but before its first event was sent; repeating RunThreadStream is then
refused (the thread has an active run), while CreateThreadAndRunStream would start a second
thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "ASSISTANTS_GRPC_TARGET"
"""Read for the target when none is given."""

SERVICES = (
    "assistants.v1.AssistantService",
    "assistants.v1.ThreadService",
    "assistants.v1.MessageService",
    "assistants.v1.RunService",
)

# gRPC ignores retry policies with more attempts than this.
MAX_ATTEMPTS_LIMIT = 5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How calls that fail with UNAVAILABLE are retried.

    Attributes:
        max_attempts: attempts per call, including the first; 2 to 5 (gRPC's limit).
        initial_backoff: seconds before the first retry; each wait is drawn at random up to the
            current backoff, which grows by `backoff_multiplier` up to `max_backoff`.
        max_backoff: the largest backoff in seconds.
        backoff_multiplier: growth of the backoff per attempt.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"max_attempts must be between 2 and {MAX_ATTEMPTS_LIMIT}")
        if self.initial_backoff <= 0 or self.max_backoff <= 0 or self.backoff_multiplier <= 0:
            raise ValueError("backoffs and the multiplier must be positive")


def service_config(retry: RetryPolicy | None) -> str:
    """The channel's service config as JSON: the retry policy for every service's methods."""
    method_config: dict[str, Any] = {"name": [{"service": name} for name in SERVICES]}
    if retry is not None:
        method_config["retryPolicy"] = {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": _duration(retry.initial_backoff),
            "maxBackoff": _duration(retry.max_backoff),
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method_config]})


def _duration(seconds: float) -> str:
    # The service config takes protobuf Duration JSON: decimal seconds with an "s".
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Everything needed to open a channel, sync or async."""

    target: str
    credentials: grpc.ChannelCredentials | None
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def build(
        cls,
        target: str | None,
        *,
        tls: bool,
        root_certificates: bytes | None,
        private_key: bytes | None,
        certificate_chain: bytes | None,
        credentials: grpc.ChannelCredentials | None,
        retry: RetryPolicy | None,
        options: Sequence[tuple[str, Any]],
    ) -> ChannelSettings:
        """Resolves the target (argument, else $ASSISTANTS_GRPC_TARGET, else 127.0.0.1:50051)
        and the credentials: the ones given, else TLS when asked for or when any certificate
        is given, else plaintext."""
        resolved_target = target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
        if credentials is None and (tls or root_certificates or private_key or certificate_chain):
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=private_key,
                certificate_chain=certificate_chain,
            )
        channel_options = (
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(retry)),
            *options,
        )
        return cls(resolved_target, credentials, tuple(channel_options))

    def sync_channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=self.options)
        return grpc.secure_channel(self.target, self.credentials, options=self.options)

    def async_channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.target, options=self.options)
        return grpc.aio.secure_channel(self.target, self.credentials, options=self.options)
