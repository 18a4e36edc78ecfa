"""The composition root: builds every part from the settings and wires them together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistants.v1 import run_service_pb2_grpc
from assistants_grpc.adapters.providers.router import ModelRoutes, load_model_routes
from assistants_grpc.adapters.storage.postgres import PostgresStorage
from assistants_grpc.adapters.storage.sqlite import SqliteStorage
from assistants_grpc.application.assistants import Assistants
from assistants_grpc.application.messages import Messages
from assistants_grpc.application.threads import Threads
from assistants_grpc.config import Settings
from assistants_grpc.ports.storage import Storage
from assistants_grpc.transport.resource_servicers import (
    AssistantServicer,
    MessageServicer,
    ThreadServicer,
)
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
        client_ca=settings.tls_client_ca_file.read_bytes()
        if settings.tls_client_ca_file
        else None,
    )


@dataclass
class Application:
    settings: Settings
    storage: Storage
    router: ModelRoutes
    server: AssistantsServer
    port: int = 0

    async def close(self) -> None:
        await self.router.aclose()
        await self.storage.close()


async def build_application(settings: Settings) -> Application:
    """Everything started except the gRPC server itself (call `start`)."""
    storage = build_storage(settings)
    await storage.start()
    router = build_router(settings)
    servicers = Servicers(
        assistants=AssistantServicer(Assistants(storage, router)),
        threads=ThreadServicer(Threads(storage)),
        messages=MessageServicer(Messages(storage)),
        runs=run_service_pb2_grpc.RunServiceServicer(),
    )
    server = AssistantsServer(
        servicers,
        authenticate=None,
        max_message_bytes=settings.max_message_bytes,
        reflection_enabled=settings.reflection,
    )
    return Application(settings=settings, storage=storage, router=router, server=server)


async def start(app: Application) -> int:
    app.port = app.server.listen(app.settings.host, app.settings.port, read_tls(app.settings))
    await app.server.start()
    return app.port
