"""TLS from configuration: clients that trust the server's CA connect, plaintext clients do
not; with a client CA, only clients presenting a certificate it signed get in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from assistants.v1 import assistant_service_pb2
from assistants_grpc.composition import Application

from ..support.servers import in_process_server, server_settings
from .certificates import CertificateAuthority, Issued
from .clients import connect


@dataclass(frozen=True)
class Pki:
    server_ca: CertificateAuthority
    client_ca: CertificateAuthority
    server_cert: Path
    server_key: Path
    client_ca_file: Path
    good_client: Issued
    stranger: Issued
    """A client certificate from a CA the server does not trust."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    server_ca = CertificateAuthority("test server CA")
    client_ca = CertificateAuthority("test client CA")
    server_cert, server_key = server_ca.issue_server().write(folder, "server")
    client_ca_file = folder / "client-ca.crt"
    client_ca_file.write_bytes(client_ca.certificate_pem)
    return Pki(
        server_ca=server_ca,
        client_ca=client_ca,
        server_cert=server_cert,
        server_key=server_key,
        client_ca_file=client_ca_file,
        good_client=client_ca.issue_client("good client"),
        stranger=CertificateAuthority("someone else's CA").issue_client("stranger"),
    )


@pytest.fixture
async def tls_app(sqlite_url: str, pki: Pki) -> AsyncIterator[Application]:
    settings = server_settings(
        sqlite_url, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    async with in_process_server(settings) as (app, _):
        yield app


@pytest.fixture
async def mtls_app(sqlite_url: str, pki: Pki) -> AsyncIterator[Application]:
    settings = server_settings(
        sqlite_url,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.client_ca_file,
    )
    async with in_process_server(settings) as (app, _):
        yield app


async def _call(
    app: Application, credentials: grpc.ChannelCredentials | None, key: str | None = None
) -> grpc.StatusCode:
    stubs = connect(f"127.0.0.1:{app.port}", credentials=credentials, key=key)
    try:
        await stubs.assistants.ListAssistants(
            assistant_service_pb2.ListAssistantsRequest(), timeout=5
        )
        health = await stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError as error:
        return error.code()
    finally:
        await stubs.close()
    return grpc.StatusCode.OK


def _trusting(pki: Pki, client: Issued | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.server_ca.certificate_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.certificate_pem if client else None,
    )


async def test_tls_clients_that_trust_the_ca_connect(tls_app: Application, pki: Pki) -> None:
    assert await _call(tls_app, _trusting(pki)) == grpc.StatusCode.OK


async def test_tls_carries_api_keys(tls_app: Application, pki: Pki) -> None:
    created = await tls_app.api_keys.create("acme")
    assert await _call(tls_app, _trusting(pki), key=created.secret) == grpc.StatusCode.OK
    assert await _call(tls_app, _trusting(pki)) == grpc.StatusCode.UNAUTHENTICATED


async def test_plaintext_clients_are_refused(tls_app: Application) -> None:
    assert await _call(tls_app, None) == grpc.StatusCode.UNAVAILABLE


async def test_clients_that_do_not_trust_the_server_are_refused(
    tls_app: Application, pki: Pki
) -> None:
    untrusting = grpc.ssl_channel_credentials(root_certificates=pki.client_ca.certificate_pem)
    assert await _call(tls_app, untrusting) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_admits_a_client_certificate_from_the_client_ca(
    mtls_app: Application, pki: Pki
) -> None:
    assert await _call(mtls_app, _trusting(pki, pki.good_client)) == grpc.StatusCode.OK


async def test_mtls_refuses_clients_without_a_certificate(mtls_app: Application, pki: Pki) -> None:
    assert await _call(mtls_app, _trusting(pki)) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_certificates_of_another_ca(mtls_app: Application, pki: Pki) -> None:
    assert await _call(mtls_app, _trusting(pki, pki.stranger)) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_plaintext_clients(mtls_app: Application) -> None:
    assert await _call(mtls_app, None) == grpc.StatusCode.UNAVAILABLE
