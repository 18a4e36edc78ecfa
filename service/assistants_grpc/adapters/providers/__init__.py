"""Model providers (OpenAI, Azure OpenAI, OpenAI-compatible servers, scripted) and model routing.

The composition root builds a router with `load_model_routes(path, inline)` and closes it with
`aclose()` at shutdown; the run engine only sees the `ModelRouter` and `ModelProvider` ports.
"""

from assistants_grpc.adapters.providers.errors import ProviderConfigError
from assistants_grpc.adapters.providers.openai_compatible import (
    OpenAICompatibleProvider,
    RetryPolicy,
)
from assistants_grpc.adapters.providers.router import (
    MODELS_ENV,
    MODELS_FILE_ENV,
    ModelRoute,
    ModelRoutes,
    default_model_routes,
    load_model_routes,
    load_model_routes_from_environment,
)
from assistants_grpc.adapters.providers.scripted import (
    DEFAULT_SCRIPT,
    Script,
    ScriptedProvider,
    load_script,
    parse_script,
)

__all__ = [
    "DEFAULT_SCRIPT",
    "MODELS_ENV",
    "MODELS_FILE_ENV",
    "ModelRoute",
    "ModelRoutes",
    "OpenAICompatibleProvider",
    "ProviderConfigError",
    "RetryPolicy",
    "Script",
    "ScriptedProvider",
    "default_model_routes",
    "load_model_routes",
    "load_model_routes_from_environment",
    "load_script",
    "parse_script",
]
