"""The `assistants-grpc` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any, get_args

import uvloop
from pydantic import ValidationError

from assistants_grpc.config import ENV_PREFIX, Settings, load_settings
from assistants_grpc.logs import configure_logging


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, documented with its environment variable and default."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of settings (keys as the flags without dashes, e.g. database_url). "
        "Env: ASSISTANTS_CONFIG.",
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        default = field.get_default(call_default_factory=False)
        shown = "computed" if field.default_factory is not None else default
        help_text = f"{field.description} Env: {env}. Default: {shown}."
        kinds = get_args(field.annotation) or (field.annotation,)
        if bool in kinds:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)
    }
    try:
        return load_settings(args.config, **overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise SystemExit(f"assistants-grpc: invalid configuration: {problems}") from None


async def _serve(settings: Settings) -> int:
    from assistants_grpc.composition import build_application, start

    app = await build_application(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = await start(app)
    print(f"assistants-grpc listening on {settings.host}:{port}", flush=True)
    await stop.wait()
    print("assistants-grpc draining", flush=True)
    await app.drain_and_close(settings.grace_period_seconds)
    print("assistants-grpc stopped", flush=True)
    return 0


async def _migrate(settings: Settings) -> int:
    from assistants_grpc.composition import build_storage

    storage = build_storage(settings)
    await storage.start()
    await storage.close()
    print("migrations applied", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistants-grpc",
        description="The Assistants API (assistants, threads, messages, runs) over gRPC.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="Run the server.",
        description="Run the gRPC server. Flags override environment variables, which "
        "override the YAML file given by --config.",
    )
    _add_settings_flags(serve)
    migrate = commands.add_parser("migrate", help="Apply database migrations and exit.")
    _add_settings_flags(migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings_from(args)
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "serve":
        return uvloop.run(_serve(settings))
    if args.command == "migrate":
        return uvloop.run(_migrate(settings))
    print(f"unknown command {args.command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
