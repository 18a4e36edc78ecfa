"""The `assistants-grpc` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import signal
import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, get_args

import uvloop
from pydantic import ValidationError

from assistants_grpc.application.api_keys import KEY_CACHE_SECONDS, ApiKeys
from assistants_grpc.config import ENV_PREFIX, Settings, load_settings
from assistants_grpc.logs import configure_logging

if TYPE_CHECKING:
    from assistants_grpc.ports.storage import ApiKeyRecord

# The settings the `keys` commands use: where the keys are stored, and how to log.
_KEYS_SETTINGS = ("database_url", "log_level", "log_json")


def _add_settings_flags(
    parser: argparse.ArgumentParser, only: Collection[str] | None = None
) -> None:
    """One flag per setting (or per setting named in `only`), documented with its environment
    variable and default."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of settings (keys as the flags without dashes, e.g. database_url). "
        "Env: ASSISTANTS_CONFIG.",
    )
    for name, field in Settings.model_fields.items():
        if only is not None and name not in only:
            continue
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


# Collector thresholds for a serving process (young, middle, old generation). Each call and
# each streamed event allocates many short-lived objects, and with Python's default of 700 the
# young generation was collected several times per streamed run; rarer collections cut server
# CPU per paced stream by about a sixth in the conversation benchmark.
SERVING_GC_THRESHOLDS = (20_000, 20, 100)


def _tune_garbage_collector() -> None:
    """Makes collections rarer, and takes what exists once the server runs (modules, the
    composed application, which live as long as the process) out of the collector's sight."""
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def _serve(settings: Settings) -> int:
    from assistants_grpc.composition import StartupError, build_application, start

    app = await build_application(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await start(app)
    except StartupError as error:
        print(f"assistants-grpc: {error}", file=sys.stderr, flush=True)
        await app.close()
        return 2
    _tune_garbage_collector()
    print(f"assistants-grpc listening on {settings.host}:{port}", flush=True)
    if app.metrics_port is not None:
        print(f"assistants-grpc metrics on {settings.host}:{app.metrics_port}", flush=True)
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


def _timestamp(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_table(keys: Sequence[ApiKeyRecord]) -> str:
    rows = [("ID", "PROJECT", "NAME", "CREATED", "REVOKED")]
    rows += [
        (k.id, k.project_id, k.name or "-", _timestamp(k.created_at), _timestamp(k.revoked_at))
        for k in keys
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    # The storage adapters alone, not the composition root: that would load every provider
    # SDK and make each key command take a second longer.
    from assistants_grpc.adapters.storage.postgres import PostgresStorage
    from assistants_grpc.adapters.storage.sqlite import SqliteStorage
    from assistants_grpc.domain.errors import DomainError
    from assistants_grpc.ports.storage import Storage

    sqlite_path = settings.sqlite_path
    storage: Storage = (
        SqliteStorage(sqlite_path)
        if sqlite_path is not None
        else PostgresStorage(settings.database_url)
    )
    await storage.start()
    try:
        # Whether calls need keys does not matter here: these commands only manage them.
        keys = ApiKeys(storage, always_required=False)
        if args.keys_command == "create":
            created = await keys.create(args.project, args.name)
            # The key alone on stdout, so that `KEY=$(assistants-grpc keys create ...)` works.
            print(created.secret, flush=True)
            print(
                f"Created {created.record.id} for project {created.record.project_id}. "
                "Store the key now: it is not stored and cannot be shown again.",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            print(_key_table(await keys.list()), flush=True)
        else:
            record, revoked_now = await keys.revoke(args.key_id)
            if revoked_now:
                print(f"Revoked {record.id} of project {record.project_id}.", flush=True)
            else:
                print(f"{record.id} was already revoked at {_timestamp(record.revoked_at)}.")
    except DomainError as error:
        print(f"assistants-grpc: {error.message}", file=sys.stderr)
        return 1
    finally:
        await storage.close()
    return 0


def _add_keys_commands(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="Create, list and revoke API keys.",
        description="API keys, each bound to a project. Calls must carry one as "
        "`authorization: Bearer <key>` metadata once any key exists. A running server notices "
        f"a new or revoked key within {KEY_CACHE_SECONDS:g} seconds.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create",
        help="Create a key and print it (only this once).",
        description="Create a key for a project and print it on stdout. Only its hash is "
        "stored: the key cannot be shown again.",
    )
    create.add_argument("--project", required=True, help="The project the key gives access to.")
    create.add_argument("--name", default="", help="A label for the key, e.g. who holds it.")
    _add_settings_flags(create, _KEYS_SETTINGS)
    listing = key_commands.add_parser(
        "list", help="List keys: id, project, name, created, revoked (never the key)."
    )
    _add_settings_flags(listing, _KEYS_SETTINGS)
    revoke = key_commands.add_parser("revoke", help="Revoke a key by its id.")
    revoke.add_argument("key_id", metavar="KEY_ID", help="The key's id (key_...).")
    _add_settings_flags(revoke, _KEYS_SETTINGS)


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
    _add_keys_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings_from(args)
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "serve":
        return uvloop.run(_serve(settings))
    if args.command == "migrate":
        return uvloop.run(_migrate(settings))
    if args.command == "keys":
        return uvloop.run(_keys(args, settings))
    print(f"unknown command {args.command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
