"""`chatbot-server`: serve (default), worker, migrate, bootstrap a database server, or
manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import timedelta

import structlog

from chatbot_server.app import ListenError, open_resources, run_edge, run_worker, serve
from chatbot_server.config import Settings, SettingsError, parse_duration
from chatbot_server.edge.envoy_config import envoy_config, parse_upstreams
from chatbot_server.edge.envoy_process import EdgeError, validate
from chatbot_server.governance import api_key_store
from chatbot_server.governance.api_keys import ROLES, ApiKeyRecord
from chatbot_server.governance.audit import audited_command
from chatbot_server.governance.key_management import (
    DEFAULT_OVERLAP,
    create_key,
    revoke_key,
    rotate_key,
)
from chatbot_server.maintenance.clearing import clear_data
from chatbot_server.maintenance.seeding import (
    SIZES,
    SeedError,
    clear_seeded,
    seed_conversations,
    seed_documents,
)
from chatbot_server.money.pricing import MICRO_USD_PER_USD
from chatbot_server.platform.bootstrap import BootstrapError, bootstrap_database, plan_from_urls
from chatbot_server.platform.database import (
    DatabaseUnavailableError,
    command_pool,
    migrate,
    start_embedded,
)
from chatbot_server.platform.embedded_postgres import EmbeddedPostgresError
from chatbot_server.platform.errors import ServiceError
from chatbot_server.platform.logs import configure_logging
from chatbot_server.platform.memory import fix_allocation_thresholds
from chatbot_server.platform.metrics import MetricsListenError
from chatbot_server.platform.migrations import MigrationError
from chatbot_server.platform.tls import TlsError

log = structlog.get_logger(__name__)

# Failures an operator fixes by changing the environment, reported as one line each.
_SETUP_ERRORS = (
    SettingsError,
    ListenError,
    BootstrapError,
    DatabaseUnavailableError,
    EmbeddedPostgresError,
    MigrationError,
    MetricsListenError,
    EdgeError,
    TlsError,
)
_COMMANDS = {
    "serve": "run the gRPC server (the default)",
    "worker": "process queued documents only, without serving gRPC",
    "edge": "run the Envoy edge for browsers (gRPC-Web, Connect, the console) on WEB_ADDRESS",
    "migrate": "apply database migrations as the schema owner (MIGRATION_DATABASE_URL)",
    "bootstrap": "create the roles, database and extensions as a superuser "
    "(SUPERUSER_DATABASE_URL), from MIGRATION_DATABASE_URL and DATABASE_URL",
    "keys": "create, list, rotate or revoke API keys in the configured database",
    "seed": "add sample documents and conversations (refused when ENVIRONMENT=production)",
    "clear-data": "delete every row (documents, conversations, logs, keys); keep the schema",
}
_PRINTING_COMMANDS = ("keys", "seed", "clear-data", "edge")
_COMMANDS_WITH_OPTIONS = (*_PRINTING_COMMANDS, "serve")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = Settings.from_env(os.environ)
        # Commands that print results keep stdout for them; the log goes to stderr.
        log_stream = sys.stderr if command in _PRINTING_COMMANDS else sys.stdout
        configure_logging(settings.logging.level, settings.logging.format, log_stream)
        fix_allocation_thresholds()
        if command == "keys":
            return asyncio.run(_keys(settings, args))
        if command == "seed":
            return asyncio.run(_seed(settings, args))
        if command == "clear-data":
            refused = None if args.yes else _refuse_clearing(args.keep_api_keys)
            return refused if refused is not None else asyncio.run(_clear_data(settings, args))
        if command == "edge":
            return _edge(settings, args)
        if command == "serve" and args.edge:
            asyncio.run(serve(settings, with_edge=True))
            return 0
        commands = {
            "serve": serve,
            "worker": run_worker,
            "migrate": _migrate,
            "bootstrap": _bootstrap,
        }
        asyncio.run(commands[command](settings))
    except _SETUP_ERRORS as error:
        print(f"chatbot-server: {error}", file=sys.stderr)
        return 2
    except SeedError as error:
        print(f"chatbot-server: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatbot-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, what in _COMMANDS.items():
        if name not in _COMMANDS_WITH_OPTIONS:
            commands.add_parser(name, help=what)
    serve_command = commands.add_parser("serve", help=_COMMANDS["serve"])
    serve_command.add_argument("--edge", action="store_true",
                               help="start the edge beside the server on WEB_ADDRESS and stop "
                                    "it with the server")  # fmt: skip
    edge = commands.add_parser("edge", help=_COMMANDS["edge"])
    edge.add_argument("--upstream", metavar="ADDR[,ADDR…]",
                      help="the gRPC servers, host:port, comma-separated; a name resolves to all "
                           "its addresses (default: GRPC_ADDRESS)")  # fmt: skip
    edge_output = edge.add_mutually_exclusive_group()
    edge_output.add_argument(
        "--print-config", action="store_true", help="print the Envoy configuration (JSON); exit"
    )
    edge_output.add_argument(
        "--check", action="store_true", help="check it with envoy --mode validate; exit"
    )
    seed = commands.add_parser("seed", help=_COMMANDS["seed"])
    seed.add_argument("--size", choices=tuple(SIZES), default="small",
                      help="small: 5 documents, 250 chunks, 20 conversations; medium: 20, 2,000, "
                           "100; large: 50, 10,000, 500 (default: %(default)s)")  # fmt: skip
    seed.add_argument("--clear", action="store_true", help="remove earlier seeded rows first")
    only = seed.add_mutually_exclusive_group()
    only.add_argument("--documents-only", action="store_true")
    only.add_argument("--conversations-only", action="store_true", help="cite seeded documents")
    clear = commands.add_parser("clear-data", help=_COMMANDS["clear-data"])
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.add_argument("--keep-api-keys", action="store_true", help="delete all but API keys")
    keys = commands.add_parser("keys", help=_COMMANDS["keys"]).add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create a key; its secret is printed once, last")
    create.add_argument("--name", required=True, help="who uses it, e.g. the calling service")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--daily-budget-usd", type=float, help="the key's own daily budget")
    create.add_argument("--rate-limit", default="", help="replaces RATE_LIMIT_AUTHENTICATED")
    create.add_argument("--expires-in", type=_duration, metavar="SPAN",
                        help="the key stops working this long from now: 90d, 12h, 30m")  # fmt: skip
    rotate = keys.add_parser(
        "rotate",
        help="give a key a new secret, printed once, last; the old one works for the overlap",
    )
    rotate.add_argument("key", metavar="ID|PREFIX")
    rotate.add_argument("--overlap", type=_duration, default=DEFAULT_OVERLAP, metavar="SPAN",
                        help="how long the old secret keeps working (default: 24h)")  # fmt: skip
    rotate.add_argument("--expires-in", type=_duration, metavar="SPAN",
                        help="a new expiry from now (default: keep the key's)")  # fmt: skip
    listed = keys.add_parser("list", help="keys, newest first, without secrets")
    listed.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys.add_parser("revoke", help="revoke a key by id or by its shown prefix")
    revoke.add_argument("key", metavar="ID|PREFIX")
    return parser


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    async with command_pool(settings.database) as pool:
        try:
            if args.action == "list":
                records = await api_key_store.list_keys(pool, args.all, 10_000, None)
                for record in records:
                    print(_key_line(record))
                return 0
            async with audited_command(pool, f"keys {args.action}", _arguments(args)) as audit:
                if args.action == "create":
                    record, secret = await create_key(
                        pool, args.name, args.role, args.daily_budget_usd, args.rate_limit,
                        args.expires_in,
                    )  # fmt: skip
                elif args.action == "rotate":
                    record, secret = await rotate_key(pool, args.key, args.overlap, args.expires_in)
                else:
                    record, secret = await revoke_key(pool, args.key), None
                audit.target = str(record.id)
            if secret is None:
                print(_key_line(record))
            else:
                _print_secret(record, secret)
        except ServiceError as error:
            print(f"chatbot-server: {error.message}", file=sys.stderr)
            return 1
    return 0


def _arguments(args: argparse.Namespace) -> dict[str, object]:
    """A command's options, for its audit row."""
    return {name: value for name, value in vars(args).items() if name not in ("command", "action")}


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    if settings.server.environment == "production":
        print("chatbot-server: seed is refused with ENVIRONMENT=production", file=sys.stderr)
        return 2
    size = SIZES[args.size]

    def progress(step: str) -> None:
        print(f"seed: {step}", file=sys.stderr, flush=True)

    resources = await open_resources(settings)
    try:
        async with audited_command(resources.pool, "seed", _arguments(args)):
            if args.clear:
                documents, conversations = await clear_seeded(resources.pool)
                print(f"removed {documents} seeded documents, {conversations} seeded conversations")
            if not args.conversations_only:
                await seed_documents(resources.pool, resources.embedder, size, progress)
            if not args.documents_only:
                await seed_conversations(resources.pool, size, progress)
    finally:
        await resources.close()
    made = [] if args.conversations_only else [f"{size.documents} documents ({size.chunks} chunks)"]
    made += [] if args.documents_only else [f"{size.conversations} conversations"]
    print(f"seeded {' and '.join(made)}")
    return 0


def _edge(settings: Settings, args: argparse.Namespace) -> int:
    try:
        upstreams = parse_upstreams(args.upstream or settings.server.grpc_address)
    except ValueError as error:
        print(f"chatbot-server: --upstream: {error}", file=sys.stderr)
        return 2
    config = envoy_config(settings.edge, upstreams)
    if args.print_config:
        print(json.dumps(config.bootstrap, indent=2))
        return 0
    if args.check:
        validate(config)
        print("the edge configuration is valid")
        return 0
    return asyncio.run(run_edge(settings.edge, upstreams))


def _refuse_clearing(keep_api_keys: bool) -> int | None:
    """Asks before clear-data deletes; the exit code when the answer is not yes."""
    what = "every document, conversation, answer log, experiment and budget record"
    what += "" if keep_api_keys else ", and every API key"
    if not sys.stdin.isatty():
        print(f"chatbot-server: clear-data deletes {what}; add --yes to confirm",
              file=sys.stderr)  # fmt: skip
        return 2
    if input(f"This deletes {what}. Type 'yes' to continue: ").strip().lower() != "yes":
        print("nothing deleted", file=sys.stderr)
        return 1
    return None


async def _clear_data(settings: Settings, args: argparse.Namespace) -> int:
    async with (
        command_pool(settings.database) as pool,
        audited_command(pool, "clear-data", _arguments(args)),
    ):
        deleted = await clear_data(pool, keep_api_keys=args.keep_api_keys)
    print("deleted " + ", ".join(f"{count} {table}" for table, count in deleted.items()))
    return 0


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _print_secret(record: ApiKeyRecord, secret: str) -> None:
    print(_key_line(record))
    print("The secret is shown only now; send it as 'authorization: Bearer <secret>':")
    print(secret)


def _key_line(record: ApiKeyRecord) -> str:
    budget = (
        f"${record.daily_budget_micro_usd / MICRO_USD_PER_USD:.2f}/day"
        if record.daily_budget_micro_usd is not None
        else "global budget"
    )
    state = "revoked" if record.revoked else "active"
    limit = f"  limit {record.rate_limit}" if record.rate_limit else ""
    expiry = f"  expires {record.expires_at:%Y-%m-%d %H:%M}Z" if record.expires_at else ""
    old = record.previous_secret_expires_at
    overlap = f"  old secret until {old:%Y-%m-%d %H:%M}Z" if old else ""
    return (
        f"{record.id}  {record.prefix}…  {record.role:<6} {state:<7} {budget}{limit}{expiry}"
        f"{overlap}  {record.name}"
    )


async def _migrate(settings: Settings) -> None:
    database = settings.database
    if database.migration_url is not None:
        applied = await migrate(database.migration_url, database.app_role)
        log.info("migrate.done", applied=applied)
    elif database.embedded:
        embedded = await start_embedded(database)
        await embedded.stop_if_started_here()
    else:
        raise SettingsError(
            "migrate needs MIGRATION_DATABASE_URL: the URL of the role that owns the schema "
            "(DATABASE_URL is the restricted role, which cannot change the schema)"
        )


async def _bootstrap(settings: Settings) -> None:
    superuser_url = settings.database.superuser_url
    owner_url = settings.database.migration_url
    app_url = settings.database.url
    if superuser_url is None or owner_url is None or app_url is None:
        raise SettingsError(
            "bootstrap needs SUPERUSER_DATABASE_URL (a superuser), MIGRATION_DATABASE_URL "
            "(the schema owner to create) and DATABASE_URL (the restricted role to create)"
        )
    await bootstrap_database(superuser_url, plan_from_urls(owner_url, app_url))
