"""The model list: which provider deployment serves which model name.

A YAML (or JSON) document, either `{models: [...]}` or the bare list::

    models:
      - name: gpt-4o                    # the `model` named on assistants and runs
        provider: openai
        model: gpt-4o                   # upstream name; defaults to the requested name
        api_key_env: OPENAI_API_KEY     # the default for provider openai
        timeout_seconds: 60
        max_retries: 2
      - name: "azure-*"
        provider: azure
        azure_endpoint_env: AZURE_OPENAI_ENDPOINT   # or azure_endpoint: https://...
        api_version: "2024-10-21"
        deployment: my-deployment       # defaults to the upstream model name
        api_key_env: AZURE_OPENAI_API_KEY           # the default for provider azure
      - name: "local/*"
        provider: openai_compatible
        base_url: http://127.0.0.1:8000/v1          # or base_url_env
        model: "{suffix}"
      - name: "scripted*"
        provider: scripted
        script: scripts/demo.yaml       # optional; relative to the model list's folder

Fields of every remote deployment (`openai`, `azure`, `openai_compatible`): `api_key_env`,
`timeout_seconds` (each wait on the upstream), `max_retries`, `retry_backoff_seconds`,
`retry_max_backoff_seconds`, `max_retry_after_seconds`, `headers` (extra, non-secret headers),
`max_tokens_param` (`max_completion_tokens`, or `max_tokens` for servers that only know that),
`include_usage` (false for servers that reject `stream_options`) and `http_transport` (`auto`, the
default, streams through aiohttp when it is installed and through httpx2 otherwise; `aiohttp` or
`httpx` force one). An `openai_compatible` server
without `api_key_env` gets a placeholder key, never the ambient OpenAI key.

Credentials are only ever named by environment variable: a literal `api_key` is rejected.

`model` may use two placeholders: `{name}`, the model name as requested, and `{suffix}`, the part of
it matched by the wildcards of `name`: everything after the literal text before the first wildcard
and before the literal text after the last one (for `local/*` and `local/llama3` that is `llama3`;
for `team-*-v1` and `team-big-v1` it is `big`).
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from assistants_grpc.adapters.providers.errors import (
    ProviderConfigError,
    describe_validation_error,
)

WILDCARD_CHARACTERS = frozenset("*?[")
PLACEHOLDER = re.compile(r"\{(name|suffix)\}")
"""A placeholder in an upstream name template."""
_SECRET_FIELDS = ("api_key", "azure_ad_token", "key", "token", "password")
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


def is_wildcard(pattern: str) -> bool:
    return any(character in WILDCARD_CHARACTERS for character in pattern)


class _Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    """An exact model name, or a shell-style pattern (`*`, `?`, `[...]`)."""
    model: Annotated[str, Field(min_length=1)] | None = None
    """The upstream model name, possibly with `{name}` and `{suffix}`; defaults to `{name}`."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for field_name in _SECRET_FIELDS:
                if field_name in data:
                    raise ValueError(
                        f"`{field_name}` is not allowed: credentials never go into the model "
                        "list; put the key into an environment variable and name that variable "
                        "with `api_key_env`"
                    )
        return data

    @pydantic.model_validator(mode="after")
    def _placeholders(self) -> _Route:
        _check_template(self.model, "model", self.name)
        return self

    def upstream(self) -> str | None:
        """The upstream name template; None passes the requested name through."""
        return self.model


class _RemoteRoute(_Route):
    api_key_env: Annotated[str, Field(min_length=1)] | None = None
    timeout_seconds: PositiveFloat = 60.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    retry_backoff_seconds: PositiveFloat = 0.5
    retry_max_backoff_seconds: PositiveFloat = 8.0
    max_retry_after_seconds: NonNegativeFloat = 60.0
    headers: dict[str, str] = Field(default_factory=dict)
    max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    include_usage: bool = True
    http_transport: Literal["auto", "aiohttp", "httpx"] = "auto"

    @pydantic.field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValueError(
                    f"the header {name!r} carries credentials, which never go into the model "
                    "list; name the key's environment variable with `api_key_env`"
                )
        return headers


class OpenAIRoute(_RemoteRoute):
    provider: Literal["openai"]
    base_url: str | None = None
    """Defaults to OpenAI's own API."""


class OpenAICompatibleRoute(_RemoteRoute):
    provider: Literal["openai_compatible"]
    base_url: str | None = None
    base_url_env: str | None = None

    @pydantic.model_validator(mode="after")
    def _one_url(self) -> OpenAICompatibleRoute:
        if (self.base_url is None) == (self.base_url_env is None):
            raise ValueError("give exactly one of `base_url` and `base_url_env`")
        return self


class AzureRoute(_RemoteRoute):
    provider: Literal["azure"]
    azure_endpoint: str | None = None
    azure_endpoint_env: str | None = None
    api_version: Annotated[str, Field(min_length=1)] = "2024-10-21"
    deployment: Annotated[str, Field(min_length=1)] | None = None
    """The Azure deployment to call (placeholders as in `model`); defaults to the model name."""

    @pydantic.field_validator("api_version", mode="before")
    @classmethod
    def _unquoted_date(cls, value: object) -> object:
        # YAML reads an unquoted 2024-10-21 as a date.
        return value.isoformat() if isinstance(value, datetime.date) else value

    @pydantic.model_validator(mode="after")
    def _one_endpoint(self) -> AzureRoute:
        if (self.azure_endpoint is None) == (self.azure_endpoint_env is None):
            raise ValueError("give exactly one of `azure_endpoint` and `azure_endpoint_env`")
        if self.deployment is not None and self.model is not None:
            raise ValueError("give `deployment` (Azure's name for the model) or `model`, not both")
        _check_template(self.deployment, "deployment", self.name)
        return self

    def upstream(self) -> str | None:
        # Azure addresses a model by its deployment name, which goes where the model name goes.
        return self.deployment or self.model


class ScriptedRoute(_Route):
    provider: Literal["scripted"]
    script: str | None = None
    """A script file; relative paths are read from the model list file's folder. None echoes."""


PROVIDER_KINDS = ("openai", "azure", "openai_compatible", "scripted")


def _provider_kind(value: object) -> str | None:
    kind = value.get("provider") if isinstance(value, dict) else getattr(value, "provider", None)
    return kind if isinstance(kind, str) else None


RouteConfig = Annotated[
    Annotated[OpenAIRoute, pydantic.Tag("openai")]
    | Annotated[OpenAICompatibleRoute, pydantic.Tag("openai_compatible")]
    | Annotated[AzureRoute, pydantic.Tag("azure")]
    | Annotated[ScriptedRoute, pydantic.Tag("scripted")],
    pydantic.Discriminator(
        _provider_kind,
        custom_error_type="provider_kind",
        custom_error_message="`provider` must be one of " + ", ".join(PROVIDER_KINDS),
    ),
]


class ModelList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[RouteConfig]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: object) -> object:
        return {"models": value} if isinstance(value, list) else value

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> ModelList:
        seen: dict[str, int] = {}
        for index, route in enumerate(self.models):
            if route.name in seen:
                raise ValueError(
                    f"models[{index}]: the name {route.name!r} is already used by "
                    f"models[{seen[route.name]}]"
                )
            seen[route.name] = index
        return self


def _check_template(template: str | None, field_name: str, route_name: str) -> None:
    if template is None:
        return
    used = set(PLACEHOLDER.findall(template))
    if "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
        raise ValueError(
            f"`{field_name}` may only use the placeholders {{name}} and {{suffix}} in braces"
        )
    if "suffix" in used and not is_wildcard(route_name):
        raise ValueError(f"`{field_name}` uses {{suffix}}, but `name` has no wildcard")


def parse_model_list(text: str, *, source: str) -> ModelList:
    """Read a YAML or JSON model list; raise ProviderConfigError saying what is wrong where."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ProviderConfigError(f"{source} is not valid YAML or JSON{where}") from None
    if document is None:
        document = {"models": []}
    try:
        return ModelList.model_validate(document)
    except pydantic.ValidationError as error:
        message = describe_validation_error(source, error, hidden=frozenset(PROVIDER_KINDS))
        raise ProviderConfigError(message) from None
