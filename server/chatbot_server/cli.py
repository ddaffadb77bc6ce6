"""`chatbot-server`: serve (default), worker, migrate, or bootstrap a database server."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import structlog

from chatbot_server.app import run_worker, serve
from chatbot_server.bootstrap import BootstrapError, bootstrap_database, plan_from_urls
from chatbot_server.config import Settings, SettingsError
from chatbot_server.database import DatabaseUnavailableError, migrate, start_embedded
from chatbot_server.embedded_postgres import EmbeddedPostgresError
from chatbot_server.logs import configure_logging
from chatbot_server.migrations import MigrationError

log = structlog.get_logger(__name__)

# Failures an operator fixes by changing the environment, reported as one line each.
_SETUP_ERRORS = (
    SettingsError,
    BootstrapError,
    DatabaseUnavailableError,
    EmbeddedPostgresError,
    MigrationError,
)
_COMMANDS = {
    "serve": "run the gRPC server (the default)",
    "worker": "process queued documents only, without serving gRPC",
    "migrate": "apply database migrations as the schema owner (MIGRATION_DATABASE_URL)",
    "bootstrap": "create the roles, database and extensions as a superuser "
    "(SUPERUSER_DATABASE_URL), from MIGRATION_DATABASE_URL and DATABASE_URL",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatbot-server",
        description=__doc__,
        epilog="; ".join(f"{name}: {what}" for name, what in _COMMANDS.items()),
    )
    parser.add_argument("command", nargs="?", default="serve", choices=tuple(_COMMANDS))
    args = parser.parse_args(argv)
    commands = {"serve": serve, "worker": run_worker, "migrate": _migrate, "bootstrap": _bootstrap}
    try:
        settings = Settings.from_env(os.environ)
        configure_logging(settings.logging.level, settings.logging.format)
        asyncio.run(commands[args.command](settings))
    except _SETUP_ERRORS as error:
        print(f"chatbot-server: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


async def _migrate(settings: Settings) -> None:
    database = settings.database
    if database.migration_url is not None:
        applied = await migrate(database.migration_url, database.app_role)
        log.info("migrate.done", applied=applied)
    elif database.embedded:
        embedded = await start_embedded(database)
        await asyncio.to_thread(embedded.cluster.stop)
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
