"""What both clients share: the constructor (where to connect, how to authenticate, deadlines
and retries)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from .calls import DEFAULT_TIMEOUT, CallDefaults
from .channels import ChannelSettings, RetryPolicy

DEFAULT_RETRY = RetryPolicy()
DEFAULT_MAX_STREAM_RECONNECTS = 3


class BaseClient(abc.ABC):
    """Resolves the settings; `AssistantsClient` and `AsyncAssistantsClient` open their channel
    and stubs from them in `_connect`."""

    def __init__(
        self,
        target: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        max_stream_reconnects: int = DEFAULT_MAX_STREAM_RECONNECTS,
        headers: Mapping[str, str] | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """
        Args:
            target: `host:port` of the service (any gRPC target, such as `dns:///name:443`).
                Default: $ASSISTANTS_GRPC_TARGET, else `127.0.0.1:50051`.
            api_key: sent as `authorization: Bearer <key>` on every call. Default:
                $ASSISTANTS_API_KEY; "" sends none.
            tls: connect with TLS, trusting the system's roots unless `root_certificates`.
            root_certificates: PEM roots to trust (implies TLS).
            private_key, certificate_chain: PEM client key and certificate, for servers that
                demand client certificates (implies TLS).
            credentials: ready-made channel credentials; overrides the three above.
            timeout: default seconds for each unary call; None for no deadline. Streams have
                no deadline unless a call gives one, since runs may take long.
            retry: gRPC's retry policy for calls that fail UNAVAILABLE; None turns retries off.
            max_stream_reconnects: how many times in a row a run's stream may pick the run up
                again with SubscribeRun after losing its connection.
            headers: metadata to send on every call.
            options: more gRPC channel options, such as `grpc.max_receive_message_length`.
        """
        if max_stream_reconnects < 0:
            raise ValueError("max_stream_reconnects must not be negative")
        self._channel_settings = ChannelSettings.build(
            target,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            credentials=credentials,
            retry=retry,
            options=options,
        )
        self._call_defaults = CallDefaults.build(api_key, timeout, headers)
        self._max_stream_reconnects = max_stream_reconnects
        self._connect()

    @property
    def target(self) -> str:
        """The target the client connects to."""
        return self._channel_settings.target

    @abc.abstractmethod
    def _connect(self) -> None:
        """Opens the channel and the stubs."""
