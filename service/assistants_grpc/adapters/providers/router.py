"""Routing a requested model name to the provider deployment that serves it.

Where the model list comes from (the composition root passes either or both):
- a YAML or JSON file, by path (by convention named by `ASSISTANTS_MODELS_FILE`);
- a whole YAML or JSON document in one string, by convention the environment variable
  `ASSISTANTS_MODELS`, e.g. `ASSISTANTS_MODELS='[{"name": "gpt-4o", "provider": "openai"}]'`.
  Its entries come before the file's, so an entry in the variable replaces a file entry of the same
  name and wins ties between equally specific patterns.

See `config.py` for the format. With no configuration at all (neither source given, or both
empty), every model name starting with "scripted" is served by the built-in echoing scripted
provider, so that the service works out of the box for demos; any other name is unknown. Once a
model list is given, only its routes exist.

Matching: an exact name beats every pattern; among patterns (shell-style, case-sensitive) the one
with the most literal characters wins, and the earlier entry breaks a tie. A name nobody serves
resolves to None.

Credentials and endpoints named by environment variables are read when the routes are built, and a
missing one fails loading with a message naming the variable, so a misconfigured service does not
start rather than failing every run.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from assistants_grpc.adapters.providers.config import (
    PLACEHOLDER,
    AzureRoute,
    OpenAICompatibleRoute,
    OpenAIRoute,
    RouteConfig,
    ScriptedRoute,
    is_wildcard,
    parse_model_list,
)
from assistants_grpc.adapters.providers.errors import ProviderConfigError
from assistants_grpc.adapters.providers.openai_compatible import (
    OpenAICompatibleProvider,
    RetryPolicy,
)
from assistants_grpc.adapters.providers.scripted import ScriptedProvider, load_script
from assistants_grpc.ports.model_provider import ModelProvider

MODELS_FILE_ENV = "ASSISTANTS_MODELS_FILE"
MODELS_ENV = "ASSISTANTS_MODELS"
DEFAULT_SCRIPTED_PATTERN = "scripted*"

_UNUSED_API_KEY = "unused"
_DEFAULT_KEY_ENVS = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY"}
_log = logging.getLogger(__name__)


class ClosableModelProvider(ModelProvider, Protocol):
    """A provider that holds resources (pooled connections) to release at shutdown."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """One entry of the model list, with the provider built for it."""

    pattern: str
    provider: ClosableModelProvider
    upstream_model: str | None = None
    """A template with `{name}` and `{suffix}`; None passes the requested name through."""
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _specificity: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wildcard = is_wildcard(self.pattern)
        regex = re.compile(fnmatch.translate(self.pattern)) if wildcard else None
        literal = re.sub(r"\[[^\]]*\]|[*?]", "", self.pattern)
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_specificity", len(literal))

    @property
    def is_wildcard(self) -> bool:
        return self._regex is not None

    @property
    def specificity(self) -> int:
        """How many characters of the pattern are literal: more means more specific."""
        return self._specificity

    def matches(self, model: str) -> bool:
        if self._regex is None:
            return model == self.pattern
        return self._regex.match(model) is not None

    def upstream_name(self, model: str) -> str:
        """The name the upstream knows `model` by."""
        if self.upstream_model is None:
            return model
        values = {"name": model, "suffix": _wildcard_part(self.pattern, model)}
        # One pass, so that braces inside a requested name are never read as placeholders.
        return PLACEHOLDER.sub(lambda found: values[found.group(1)], self.upstream_model)


class ModelRoutes:
    """The `ModelRouter`: resolves model names and owns the providers it built."""

    def __init__(self, routes: Iterable[ModelRoute]) -> None:
        self._routes = list(routes)
        self._exact: dict[str, ModelRoute] = {}
        for route in self._routes:
            if not route.is_wildcard:
                self._exact.setdefault(route.pattern, route)
        indexed = [(index, route) for index, route in enumerate(self._routes) if route.is_wildcard]
        # Sorted once, so the first match is the most specific one, earlier entries first on ties.
        indexed.sort(key=lambda item: (-item[1].specificity, item[0]))
        self._patterns = [route for _, route in indexed]

    @property
    def routes(self) -> list[ModelRoute]:
        return list(self._routes)

    def route_for(self, model: str) -> ModelRoute | None:
        route = self._exact.get(model)
        if route is not None:
            return route
        for candidate in self._patterns:
            if candidate.matches(model):
                return candidate
        return None

    def resolve(self, model: str) -> tuple[ModelProvider, str] | None:
        route = self.route_for(model)
        if route is None:
            return None
        return route.provider, route.upstream_name(model)

    async def aclose(self) -> None:
        """Close every provider once (several routes may share one)."""
        closed: set[int] = set()
        for route in self._routes:
            if id(route.provider) not in closed:
                closed.add(id(route.provider))
                await route.provider.aclose()


def default_model_routes() -> ModelRoutes:
    """The routes used without any configuration: "scripted*" echoes, nothing else is served."""
    return ModelRoutes([ModelRoute(DEFAULT_SCRIPTED_PATTERN, ScriptedProvider())])


def load_model_routes(
    path: str | Path | None = None,
    inline: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ModelRoutes:
    """Build the router from a model list file and/or a model list in a string.

    `environ` is where `api_key_env` and the other `*_env` fields are looked up (default:
    `os.environ`). Raises ProviderConfigError for an unreadable or invalid list, or a missing
    environment variable.
    """
    env = os.environ if environ is None else environ
    inline_text = inline if inline is not None and inline.strip() else None
    if path is None and inline_text is None:
        return default_model_routes()

    entries: list[tuple[RouteConfig, Path | None, str]] = []
    if inline_text is not None:
        listed = parse_model_list(inline_text, source="the inline model list")
        entries.extend((route, None, "the inline model list") for route in listed.models)
    if path is not None:
        file_path = Path(path)
        try:
            text = file_path.read_text(encoding="utf-8")
        except OSError as error:
            raise ProviderConfigError(
                f"the model list {str(file_path)!r} cannot be read: {error.strerror}"
            ) from None
        source = f"the model list {str(file_path)!r}"
        taken = {route.name for route, _, _ in entries}
        for route in parse_model_list(text, source=source).models:
            if route.name in taken:
                _log.info("model %r from %s is replaced by the inline list", route.name, source)
                continue
            entries.append((route, file_path.parent, source))

    routes = [
        ModelRoute(config.name, _build_provider(config, folder, source, env), config.upstream())
        for config, folder, source in entries
    ]
    return ModelRoutes(routes)


def load_model_routes_from_environment(environ: Mapping[str, str] | None = None) -> ModelRoutes:
    """`load_model_routes` with the file named by ASSISTANTS_MODELS_FILE and ASSISTANTS_MODELS."""
    env = os.environ if environ is None else environ
    return load_model_routes(env.get(MODELS_FILE_ENV) or None, env.get(MODELS_ENV), environ=env)


def _build_provider(
    config: RouteConfig, folder: Path | None, source: str, env: Mapping[str, str]
) -> ClosableModelProvider:
    where = f"{source}, model {config.name!r}"
    if isinstance(config, ScriptedRoute):
        if config.script is None:
            return ScriptedProvider()
        script_path = Path(config.script)
        if not script_path.is_absolute() and folder is not None:
            script_path = folder / script_path
        return ScriptedProvider(load_script(script_path))

    key_env = config.api_key_env or _DEFAULT_KEY_ENVS.get(config.provider)
    api_key = _UNUSED_API_KEY if key_env is None else _require(env, key_env, "api_key_env", where)
    retry = RetryPolicy(
        max_retries=config.max_retries,
        initial_backoff_seconds=config.retry_backoff_seconds,
        max_backoff_seconds=config.retry_max_backoff_seconds,
        max_retry_after_seconds=config.max_retry_after_seconds,
    )
    label = config.name
    if isinstance(config, AzureRoute):
        endpoint = config.azure_endpoint or _require(
            env, config.azure_endpoint_env or "", "azure_endpoint_env", where
        )
        provider = OpenAICompatibleProvider.for_azure(
            label=label,
            api_key=api_key,
            azure_endpoint=endpoint,
            api_version=config.api_version,
            timeout_seconds=config.timeout_seconds,
            retry=retry,
            headers=config.headers,
            max_tokens_param=config.max_tokens_param,
            include_usage=config.include_usage,
            http_transport=config.http_transport,
        )
        return provider
    if isinstance(config, OpenAICompatibleRoute):
        base_url = config.base_url or _require(
            env, config.base_url_env or "", "base_url_env", where
        )
    else:
        assert isinstance(config, OpenAIRoute)
        base_url = config.base_url or ""
    return OpenAICompatibleProvider.for_openai(
        label=label,
        api_key=api_key,
        base_url=base_url or None,
        timeout_seconds=config.timeout_seconds,
        retry=retry,
        headers=config.headers,
        max_tokens_param=config.max_tokens_param,
        include_usage=config.include_usage,
        http_transport=config.http_transport,
    )


def _require(env: Mapping[str, str], name: str, field_name: str, where: str) -> str:
    value = env.get(name)
    if not value:
        raise ProviderConfigError(
            f"{where}: the environment variable {name} (named by {field_name}) is not set"
        )
    return value


def _wildcard_part(pattern: str, model: str) -> str:
    positions = [i for i, character in enumerate(pattern) if character in "*?["]
    if not positions:
        return ""
    head = pattern[: positions[0]]
    last = positions[-1]
    # The literal tail starts after the last wildcard (after its closing bracket for a set).
    tail_start = pattern.find("]", last) + 1 if pattern[last] == "[" else last + 1
    tail = pattern[tail_start:] if tail_start > 0 else ""
    end = len(model) - len(tail)
    return model[len(head) : max(len(head), end)]
