"""Configuration: command-line flags over environment variables over a YAML file over defaults.

Every setting is a field of `Settings`; `assistants-grpc serve --help` lists them all with the
environment variable that sets each (`ASSISTANTS_` + the name in upper case) and its default.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "ASSISTANTS_"
CONFIG_FILE_ENV = "ASSISTANTS_CONFIG"


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. Binding beyond loopback needs API keys or "
        "--allow-unauthenticated.",
    )
    port: int = Field(50051, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    database_url: str = Field(
        "sqlite:///assistants.db",
        description="sqlite:///PATH (a file, created on first start) or "
        "postgresql://USER@HOST:PORT/DB.",
    )
    models_file: Path | None = Field(
        None, description="YAML model list mapping model names to provider deployments."
    )
    models: str | None = Field(
        None, description="The model list inline, as YAML or JSON (instead of a file)."
    )
    require_api_keys: bool = Field(
        False,
        description="Demand an API key on every call even when none exists yet. Once a key "
        "exists, keys are always demanded.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Serve without API keys on a non-loopback address (everything lands in the "
        "default project).",
    )
    tls_cert_file: Path | None = Field(None, description="PEM server certificate; enables TLS.")
    tls_key_file: Path | None = Field(None, description="PEM private key of the certificate.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signs."
    )
    grace_period_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM/SIGINT, how long in-flight calls may take to finish."
    )
    run_expiry_seconds: int = Field(
        600, ge=1, description="How long a run waits in requires_action before it expires."
    )
    worker_concurrency: int = Field(
        64, ge=0, description="Runs this replica executes at once (0: serve the API only)."
    )
    lease_seconds: int = Field(
        15, ge=2, description="How long a claimed run stays with a replica that stops renewing."
    )
    poll_interval_seconds: float = Field(
        1.0, gt=0, description="How often idle workers look for runs nobody announced."
    )
    database_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="PostgreSQL: longest wait to connect or for one statement; past it the "
        "call fails UNAVAILABLE instead of hanging on a database that does not answer.",
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request or response message."
    )
    max_concurrent_streams: int = Field(
        1000, ge=1, description="Run event streams open at once; more are refused."
    )
    provider_attempt_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="Longest one model call may take in all, retries included (routes bound "
        "each wait on the upstream with their own timeout_seconds).",
    )
    replica_id: str = Field(
        default_factory=_default_replica_id, description="This replica's name in run leases."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics over HTTP on this port."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(True, description="Log one JSON object per line.")
    reflection: bool = Field(True, description="Serve gRPC server reflection (for grpcurl).")
    tracing: bool = Field(
        False,
        description="Open an OpenTelemetry span per call, through the globally configured "
        "tracer provider (e.g. run under opentelemetry-instrument with OTEL_* variables).",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def sqlite_path(self) -> str | None:
        if self.database_url.startswith("sqlite:///"):
            return self.database_url.removeprefix("sqlite:///")
        return None

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1", "[::1]") or self.host.startswith(
            "127."
        )


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and `config_file` (or $ASSISTANTS_CONFIG), with
    `overrides` (from flags) taking precedence."""
    if config_file:
        os.environ[CONFIG_FILE_ENV] = config_file
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
