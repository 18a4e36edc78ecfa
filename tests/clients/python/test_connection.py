"""The client's connection settings against the real service: TLS with a client certificate,
and the API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistants_client import AsyncAssistantsClient, UnauthenticatedError

from ...security.certificates import CertificateAuthority
from ...support.servers import in_process_server, server_settings


async def test_mutual_tls_and_an_api_key(sqlite_url: str, tmp_path: Path) -> None:
    server_ca = CertificateAuthority("server CA")
    client_ca = CertificateAuthority("client CA")
    server_cert, server_key = server_ca.issue_server().write(tmp_path, "server")
    client_ca_file = tmp_path / "client-ca.crt"
    client_ca_file.write_bytes(client_ca.certificate_pem)
    client = client_ca.issue_client("quick start")
    settings = server_settings(
        sqlite_url,
        tls_cert_file=server_cert,
        tls_key_file=server_key,
        tls_client_ca_file=client_ca_file,
    )
    async with in_process_server(settings) as (app, _):
        key = await app.api_keys.create("team", "client test")

        def connect(api_key: str) -> AsyncAssistantsClient:
            return AsyncAssistantsClient(
                f"127.0.0.1:{app.port}",
                api_key=api_key,
                root_certificates=server_ca.certificate_pem,
                private_key=client.key_pem,
                certificate_chain=client.certificate_pem,
            )

        async with connect(key.secret) as with_key:
            created = await with_key.create_assistant(model="scripted-demo")
            assert [a.id async for a in with_key.iter_assistants()] == [created.id]
        async with connect("") as without_key:
            with pytest.raises(UnauthenticatedError) as refused:
                await without_key.get_assistants()
        assert refused.value.reason == "API_KEY_MISSING"
