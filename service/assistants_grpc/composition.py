"""The composition root: builds every part from the settings and wires them together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistants_grpc.adapters.events.local import LocalEventHub
from assistants_grpc.adapters.events.postgres import PostgresEventHub
from assistants_grpc.adapters.providers.router import ModelRoutes, load_model_routes
from assistants_grpc.adapters.storage.postgres import PostgresStorage
from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.application.assistants import Assistants
from assistants_grpc.application.messages import Messages
from assistants_grpc.application.run_engine import EngineSettings, RunEngine
from assistants_grpc.application.runs import Runs
from assistants_grpc.application.threads import Threads
from assistants_grpc.config import Settings
from assistants_grpc.ports.event_hub import EventHub
from assistants_grpc.ports.storage import Storage
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
    return PostgresStorage(settings.database_url)


def build_router(settings: Settings) -> ModelRoutes:
    return load_model_routes(settings.models_file, settings.models)


def read_tls(settings: Settings) -> TlsFiles | None:
    if settings.tls_cert_file is None:
        return None
    if settings.tls_key_file is None:
        raise ValueError("tls_key_file is required with tls_cert_file")
    return TlsFiles(
        certificate_chain=settings.tls_cert_file.read_bytes(),
        private_key=settings.tls_key_file.read_bytes(),
        client_ca=settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None,
    )


def build_hub(settings: Settings) -> EventHub:
    """One replica needs only in-process signals; with PostgreSQL there may be several
    replicas, so signals also go through LISTEN/NOTIFY."""
    if settings.sqlite_path is not None:
        return LocalEventHub()
    return PostgresEventHub(settings.database_url)


@dataclass
class Application:
    settings: Settings
    storage: Storage
    router: ModelRoutes
    hub: EventHub
    engine: RunEngine
    streams: StreamGate
    server: AssistantsServer
    port: int = 0

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
        authenticate=None,
        max_message_bytes=settings.max_message_bytes,
        reflection_enabled=settings.reflection,
    )
    return Application(
        settings=settings,
        storage=storage,
        router=router,
        hub=hub,
        engine=engine,
        streams=streams,
        server=server,
    )


async def start(app: Application) -> int:
    app.port = app.server.listen(app.settings.host, app.settings.port, read_tls(app.settings))
    await app.server.start()
    await app.engine.start()
    return app.port
