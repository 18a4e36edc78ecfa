"""The model list and the router: matching, precedence, credentials, defaults and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from assistants_grpc.adapters.providers.errors import ProviderConfigError
from assistants_grpc.adapters.providers.openai_compatible import OpenAICompatibleProvider
from assistants_grpc.adapters.providers.router import (
    ModelRoutes,
    load_model_routes,
    load_model_routes_from_environment,
)
from assistants_grpc.adapters.providers.scripted import ScriptedProvider
from assistants_grpc.ports.model_provider import ModelRouter
from assistants_grpc.testing.chat import collect_events, joined_text, user_chat
from assistants_grpc.testing.fake_upstream import FakeUpstream

ENV = {"OPENAI_API_KEY": "sk-openai-test", "AZURE_OPENAI_API_KEY": "azure-test-key"}

ROUTES = """
models:
  - name: gpt-4o
    provider: openai
  - name: "gpt-*"
    provider: openai
    timeout_seconds: 5
  - name: "gpt-4o-*"
    provider: openai
    model: "{suffix}-upstream"
  - name: "local/*"
    provider: openai_compatible
    base_url: http://127.0.0.1:9/v1
    model: "{suffix}"
  - name: "any-*"
    provider: openai_compatible
    base_url: http://127.0.0.1:9/v1
  - name: "other-*"
    provider: openai_compatible
    base_url: http://127.0.0.1:9/v1
    model: "prefix/{name}"
  - name: "scripted*"
    provider: scripted
"""

Loader = Callable[..., ModelRoutes]


@pytest.fixture
async def load() -> AsyncIterator[Loader]:
    """`load_model_routes` whose routers are closed after the test."""
    built: list[ModelRoutes] = []

    def build(
        path: str | Path | None = None,
        inline: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> ModelRoutes:
        routes = load_model_routes(path, inline, environ=ENV if environ is None else environ)
        built.append(routes)
        return routes

    yield build
    for routes in built:
        await routes.aclose()


def upstream_of(router: ModelRouter, model: str) -> str | None:
    resolved = router.resolve(model)
    return None if resolved is None else resolved[1]


# -- matching --------------------------------------------------------------------------------------


def test_exact_name_beats_patterns(load: Loader) -> None:
    router = load(inline=ROUTES)

    exact = router.route_for("gpt-4o")
    assert exact is not None
    assert exact.pattern == "gpt-4o"
    assert upstream_of(router, "gpt-4o") == "gpt-4o"


def test_the_most_specific_pattern_wins(load: Loader) -> None:
    router = load(inline=ROUTES)

    assert upstream_of(router, "gpt-4o-mini") == "mini-upstream"
    assert upstream_of(router, "gpt-3.5-turbo") == "gpt-3.5-turbo"


def test_equally_specific_patterns_go_by_order(load: Loader) -> None:
    router = load(
        inline="""
        - {name: "a*", provider: scripted}
        - {name: "*a", provider: scripted}
        """
    )

    route = router.route_for("aa")
    assert route is not None
    assert route.pattern == "a*"


def test_upstream_name_templates(load: Loader) -> None:
    router = load(inline=ROUTES)

    assert upstream_of(router, "other-{suffix}") == "prefix/other-{suffix}"
    assert upstream_of(router, "local/llama3:8b") == "llama3:8b"
    assert upstream_of(router, "any-thing") == "any-thing"
    assert upstream_of(router, "other-x") == "prefix/other-x"


def test_suffix_with_literal_text_after_the_wildcard(load: Loader) -> None:
    router = load(
        inline="""
        - name: "team-*-v1"
          provider: openai_compatible
          base_url: http://127.0.0.1:9/v1
          model: "{suffix}"
        """
    )

    assert upstream_of(router, "team-big-v1") == "big"


def test_unknown_model_resolves_to_none(load: Loader) -> None:
    router = load(inline=ROUTES)

    assert router.resolve("mistral-large") is None
    assert router.resolve("GPT-4O") is None  # names are case-sensitive


def test_each_route_gets_its_own_provider_of_the_right_kind(load: Loader) -> None:
    router = load(inline=ROUTES)

    gpt = router.resolve("gpt-4o")
    gpt_family = router.resolve("gpt-3.5")
    scripted = router.resolve("scripted-demo")
    assert gpt is not None
    assert gpt_family is not None
    assert scripted is not None
    assert isinstance(gpt[0], OpenAICompatibleProvider)
    assert gpt[0] is not gpt_family[0]
    assert isinstance(scripted[0], ScriptedProvider)


# -- defaults --------------------------------------------------------------------------------------


async def test_without_configuration_scripted_models_echo(load: Loader) -> None:
    router = load()

    resolved = router.resolve("scripted-anything")
    assert resolved is not None
    events = await collect_events(resolved[0], user_chat("hi", model=resolved[1]))
    assert joined_text(events) == "You said: hi"
    assert router.resolve("scripted") is not None
    assert router.resolve("gpt-4o") is None


def test_an_empty_inline_list_counts_as_no_configuration(load: Loader) -> None:
    assert load(inline="  ").resolve("scripted") is not None


def test_a_given_but_empty_model_list_serves_nothing(load: Loader) -> None:
    assert load(inline="models: []").resolve("scripted") is None


# -- credentials and environment -------------------------------------------------------------------


async def test_api_key_comes_from_the_named_environment_variable(load: Loader) -> None:
    async with FakeUpstream(required_api_key="sk-from-env") as upstream:
        router = load(
            inline=f"""
            - name: local
              provider: openai_compatible
              base_url: {upstream.base_url}
              api_key_env: MY_LOCAL_KEY
              model: served-name
            """,
            environ={"MY_LOCAL_KEY": "sk-from-env"},
        )
        resolved = router.resolve("local")
        assert resolved is not None

        events = await collect_events(resolved[0], user_chat(model=resolved[1]))

    assert joined_text(events)
    assert upstream.last_request.headers["authorization"] == "Bearer sk-from-env"
    assert upstream.last_request.body["model"] == "served-name"


async def test_openai_compatible_without_a_key_never_sends_the_ambient_openai_key(
    load: Loader,
) -> None:
    async with FakeUpstream() as upstream:
        router = load(
            inline=f"- {{name: local, provider: openai_compatible, base_url: {upstream.base_url}}}"
        )
        resolved = router.resolve("local")
        assert resolved is not None
        await collect_events(resolved[0], user_chat(model=resolved[1]))

    assert "sk-openai-test" not in upstream.last_request.headers["authorization"]


@pytest.mark.parametrize(
    ("route", "variable"),
    [
        ("{name: m, provider: openai}", "OPENAI_API_KEY"),
        ("{name: m, provider: openai, api_key_env: TEAM_KEY}", "TEAM_KEY"),
        (
            "{name: m, provider: azure, azure_endpoint: 'https://x.example', deployment: d}",
            "AZURE_OPENAI_API_KEY",
        ),
        ("{name: m, provider: azure, azure_endpoint_env: AZ_URL, api_key_env: K}", "AZ_URL"),
        ("{name: m, provider: openai_compatible, base_url_env: LOCAL_URL}", "LOCAL_URL"),
    ],
)
def test_a_missing_environment_variable_is_named(load: Loader, route: str, variable: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        load(inline=f"- {route}", environ={"K": "set"})

    assert f"environment variable {variable} " in str(caught.value)
    assert "model 'm'" in str(caught.value)


def test_credential_headers_are_rejected(load: Loader) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        load(inline="- {name: m, provider: openai, headers: {Authorization: 'Bearer sk-x123456'}}")

    assert "the header 'Authorization' carries credentials" in str(caught.value)
    assert "sk-x123456" not in str(caught.value)


async def test_extra_headers_reach_the_upstream(load: Loader) -> None:
    async with FakeUpstream() as upstream:
        router = load(
            inline=f"""
            - name: local
              provider: openai_compatible
              base_url: {upstream.base_url}
              headers: {{x-fake-behaviour: "text=from the header"}}
            """
        )
        resolved = router.resolve("local")
        assert resolved is not None
        events = await collect_events(resolved[0], user_chat(model=resolved[1]))

    assert joined_text(events) == "from the header"


@pytest.mark.parametrize("field", ["api_key", "azure_ad_token"])
def test_literal_credentials_are_rejected(load: Loader, field: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        load(inline=f"- {{name: m, provider: openai, {field}: sk-literal-123}}")

    message = str(caught.value)
    assert f"`{field}` is not allowed" in message
    assert "api_key_env" in message
    assert "sk-literal-123" not in message


def test_load_from_environment_variables(tmp_path: Path) -> None:
    models_file = tmp_path / "models.yaml"
    models_file.write_text("- {name: from-file, provider: scripted}\n", encoding="utf-8")
    inline = json.dumps([{"name": "from-env", "provider": "scripted"}])

    router = load_model_routes_from_environment(
        {"ASSISTANTS_MODELS_FILE": str(models_file), "ASSISTANTS_MODELS": inline}
    )

    assert router.resolve("from-file") is not None
    assert router.resolve("from-env") is not None
    assert router.resolve("scripted") is None


# -- file and inline together ----------------------------------------------------------------------


async def test_inline_entries_replace_file_entries_of_the_same_name(
    load: Loader, tmp_path: Path
) -> None:
    (tmp_path / "file.yaml").write_text("- reply: from the file's script\n", encoding="utf-8")
    (tmp_path / "models.yaml").write_text(
        "models:\n"
        "  - {name: demo, provider: scripted, script: file.yaml}\n"
        "  - {name: kept, provider: scripted, script: file.yaml}\n",
        encoding="utf-8",
    )
    inline_script = tmp_path / "inline.yaml"
    inline_script.write_text("- reply: from the inline script\n", encoding="utf-8")

    router = load(
        tmp_path / "models.yaml",
        f"- {{name: demo, provider: scripted, script: '{inline_script}'}}",
    )

    demo = router.resolve("demo")
    kept = router.resolve("kept")
    assert demo is not None
    assert kept is not None
    assert joined_text(await collect_events(demo[0], user_chat())) == "from the inline script"
    # A relative script path is read from the model list's folder.
    assert joined_text(await collect_events(kept[0], user_chat())) == "from the file's script"


def test_unreadable_model_list_file(load: Loader, tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="cannot be read"):
        load(tmp_path / "missing.yaml")


# -- Azure -----------------------------------------------------------------------------------------


async def test_azure_route_calls_its_deployment(load: Loader) -> None:
    async with FakeUpstream() as upstream:
        router = load(
            inline="""
            models:
              - name: "azure-*"
                provider: azure
                azure_endpoint_env: AZURE_OPENAI_ENDPOINT
                api_version: 2024-10-21
                deployment: my-deployment
            """,
            environ={**ENV, "AZURE_OPENAI_ENDPOINT": upstream.azure_endpoint},
        )
        resolved = router.resolve("azure-gpt-4o")
        assert resolved is not None
        assert resolved[1] == "my-deployment"

        events = await collect_events(resolved[0], user_chat(model=resolved[1]))

    assert joined_text(events)
    recorded = upstream.last_request
    assert recorded.path == "/openai/deployments/my-deployment/chat/completions"
    assert recorded.query["api-version"] == "2024-10-21"
    assert recorded.headers["api-key"] == "azure-test-key"


def test_azure_deployment_defaults_to_the_model_name(load: Loader) -> None:
    router = load(
        inline="- {name: 'az/*', provider: azure, azure_endpoint: 'https://x.example', "
        "model: '{suffix}'}"
    )

    assert upstream_of(router, "az/gpt-4o") == "gpt-4o"


# -- closing ---------------------------------------------------------------------------------------


async def test_aclose_closes_every_client() -> None:
    router = load_model_routes(inline=ROUTES, environ=ENV)
    providers = [route.provider for route in router.routes]

    await router.aclose()

    clients = [p.client for p in providers if isinstance(p, OpenAICompatibleProvider)]
    assert len(clients) == 6
    assert all(client.is_closed() for client in clients)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {name: m, provider: bedrock}", "models[0]: `provider` must be one of openai, azure"),
        ("- {name: m}", "models[0]: `provider` must be one of openai, azure"),
        (
            "- {name: m, provider: openai, timeout_seconds: 0}",
            "models[0].timeout_seconds: Input should be greater than 0",
        ),
        (
            "- {name: m, provider: openai, colour: red}",
            "models[0].colour: Extra inputs are not permitted",
        ),
        (
            "- {name: m, provider: openai_compatible}",
            "give exactly one of `base_url` and `base_url_env`",
        ),
        (
            "- {name: m, provider: azure}",
            "give exactly one of `azure_endpoint` and `azure_endpoint_env`",
        ),
        (
            "- {name: m, provider: openai, model: '{suffix}'}",
            "`model` uses {suffix}, but `name` has no wildcard",
        ),
        (
            "- {name: 'm*', provider: openai, model: '{other}'}",
            "`model` may only use the placeholders {name} and {suffix} in braces",
        ),
        (
            "- {name: m, provider: scripted}\n- {name: m, provider: scripted}",
            "models[1]: the name 'm' is already used by models[0]",
        ),
        ("models: {name: m}", "models: Input should be a valid list"),
        ("- {name: [", "is not valid YAML or JSON"),
    ],
)
def test_invalid_model_lists_say_where_and_why(load: Loader, text: str, expected: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        load(inline=text)

    assert str(caught.value).startswith("the inline model list is ")
    assert expected in str(caught.value)


def test_a_broken_script_of_a_scripted_route_is_reported(load: Loader, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- error: {kind: teapot}\n", encoding="utf-8")
    (tmp_path / "models.yaml").write_text(
        "- {name: demo, provider: scripted, script: bad.yaml}\n", encoding="utf-8"
    )

    with pytest.raises(ProviderConfigError, match=r"bad\.yaml.*\n.*turns\[0\]\.error\.kind"):
        load(tmp_path / "models.yaml")
