"""The composition root: builds every part from the settings and wires them together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from assistants_grpc.adapters.events.local import LocalEventHub
from assistants_grpc.adapters.events.postgres import PostgresEventHub
from assistants_grpc.adapters.providers.router import ModelRoutes, load_model_routes
from assistants_grpc.adapters.storage.postgres import PostgresStorage
from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.application.api_keys import ApiKeys
from assistants_grpc.application.assistants import Assistants
from assistants_grpc.application.messages import Messages
from assistants_grpc.application.run_engine import EngineSettings, RunEngine
from assistants_grpc.application.runs import Runs
from assistants_grpc.application.threads import Threads
from assistants_grpc.config import Settings
from assistants_grpc.ports.event_hub import EventHub
from assistants_grpc.ports.storage import Storage
from assistants_grpc.transport.auth import bearer_authenticator
from assistants_grpc.transport.resource_servicers import (
    AssistantServicer,
    MessageServicer,
    ThreadServicer,
)
from assistants_grpc.transport.run_servicer import RunServicer, StreamGate
from assistants_grpc.transport.server import AssistantsServer, Servicers, TlsFiles

log = logging.getLogger(__name__)


def build_storage(settings: Settings) -> Storage:
    sqlite_path = settings.sqlite_path
    if sqlite_path is not None:
        return SqliteStorage(sqlite_path)
    return PostgresStorage(settings.database_url, timeout_seconds=settings.database_timeout_seconds)


def build_router(settings: Settings) -> ModelRoutes:
    return load_model_routes(settings.models_file, settings.models)


class StartupError(Exception):
    """The settings do not allow the server to start; the message says what to change."""


def read_tls(settings: Settings) -> TlsFiles | None:
    if settings.tls_cert_file is None:
        # A key or client CA alone would silently serve plaintext: refuse instead.
        if settings.tls_key_file is not None or settings.tls_client_ca_file is not None:
            raise StartupError("tls_key_file and tls_client_ca_file need tls_cert_file")
        return None
    if settings.tls_key_file is None:
        raise StartupError("tls_key_file is required with tls_cert_file")
    try:
        return TlsFiles(
            certificate_chain=settings.tls_cert_file.read_bytes(),
            private_key=settings.tls_key_file.read_bytes(),
            client_ca=(
                settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
            ),
        )
    except OSError as error:
        raise StartupError(f"cannot read {error.filename}: {error.strerror}") from None


def build_api_keys(settings: Settings, storage: Storage) -> ApiKeys:
    """Beyond loopback, keys are demanded even before one exists (unless the operator allowed
    anonymous callers), so that revoking the last key can never open a public port."""
    exposed = not settings.is_loopback and not settings.allow_unauthenticated
    return ApiKeys(storage, always_required=settings.require_api_keys or exposed)


class UnsafeBind(StartupError):
    """Serving beyond loopback with no API key to check and no permission to skip checks."""


async def refuse_unsafe_bind(settings: Settings, api_keys: ApiKeys) -> None:
    if settings.is_loopback or settings.allow_unauthenticated or settings.require_api_keys:
        return
    if await api_keys.has_active_key():
        return
    raise UnsafeBind(
        f"refusing to serve on {settings.host}, beyond loopback, without API keys: create one "
        "with `assistants-grpc keys create --project PROJECT`, or pass --allow-unauthenticated "
        "to let anyone who reaches the port call the service (all in the default project)."
    )


def build_hub(settings: Settings) -> EventHub:
    """One replica needs only in-process signals; with PostgreSQL there may be several
    replicas, so signals also go through LISTEN/NOTIFY."""
    if settings.sqlite_path is not None:
        return LocalEventHub()
    return PostgresEventHub(
        settings.database_url, timeout_seconds=settings.database_timeout_seconds
    )


@dataclass
class Application:
    settings: Settings
    storage: Storage
    router: ModelRoutes
    hub: EventHub
    api_keys: ApiKeys
    engine: RunEngine
    streams: StreamGate
    server: AssistantsServer
    port: int = 0
    metrics: WSGIServer | None = None
    """The Prometheus endpoint, when `metrics_port` is set."""

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics is None else int(self.metrics.server_port)

    async def drain_and_close(self, grace_seconds: float) -> None:
        """Graceful shutdown: refuse new calls, let runs and streams finish within the grace
        period, tell the streams still open to resubscribe, and leave unfinished runs for the
        next start (or another replica)."""
        await self.server.begin_drain()
        await self.engine.stop(grace_seconds)
        self.streams.stop.set()
        self.hub.interrupt_all()
        await self.server.stop(min(grace_seconds, 2.0))
        await self.close()

    async def close(self) -> None:
        if self.metrics is not None:
            # shutdown() waits for the serving thread to notice, up to half a second.
            await asyncio.to_thread(self.metrics.shutdown)
            self.metrics.server_close()
            self.metrics = None
        await self.hub.close()
        await self.router.aclose()
        await self.storage.close()


async def build_application(settings: Settings) -> Application:
    """Everything started except the gRPC server itself (call `start`)."""
    storage = build_storage(settings)
    await storage.start()
    router = build_router(settings)
    hub = build_hub(settings)
    await hub.start()
    api_keys = build_api_keys(settings, storage)
    engine = RunEngine(
        storage,
        router,
        hub,
        EngineSettings(
            replica_id=settings.replica_id,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_interval_seconds=settings.poll_interval_seconds,
            run_expiry_seconds=settings.run_expiry_seconds,
            provider_timeout_seconds=settings.provider_attempt_timeout_seconds,
        ),
    )
    streams = StreamGate(settings.max_concurrent_streams)
    runs = Runs(storage, router, hub, run_expiry_seconds=settings.run_expiry_seconds)
    servicers = Servicers(
        assistants=AssistantServicer(Assistants(storage, router)),
        threads=ThreadServicer(Threads(storage)),
        messages=MessageServicer(Messages(storage)),
        runs=RunServicer(runs, streams),
    )
    server = AssistantsServer(
        servicers,
        authenticate=bearer_authenticator(api_keys),
        max_message_bytes=settings.max_message_bytes,
        reflection_enabled=settings.reflection,
        tracing=settings.tracing,
    )
    return Application(
        settings=settings,
        storage=storage,
        router=router,
        hub=hub,
        api_keys=api_keys,
        engine=engine,
        streams=streams,
        server=server,
    )


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Prometheus metrics over plain HTTP on `metrics_port` (a thread of its own), on the
    service's own address."""
    if settings.metrics_port is None:
        return None
    try:
        server, _ = start_http_server(settings.metrics_port, addr=settings.host)
    except OSError as error:
        raise StartupError(
            f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {error.strerror}"
        ) from None
    return server


async def start(app: Application) -> int:
    """Raises StartupError (before binding anything) for unusable TLS settings, or UnsafeBind
    when the settings would expose an unauthenticated service beyond loopback."""
    await refuse_unsafe_bind(app.settings, app.api_keys)
    tls = read_tls(app.settings)
    app.metrics = serve_metrics(app.settings)
    app.port = app.server.listen(app.settings.host, app.settings.port, tls)
    await app.server.start()
    await app.engine.start()
    return app.port
