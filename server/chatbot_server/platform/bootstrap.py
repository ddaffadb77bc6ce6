"""The superuser step: roles, database, extensions. Run once per server, idempotent.

Everything else (tables, indexes, grants) is done by the schema owner in `migrations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# `vector` is not a trusted extension: only a superuser may create it.
EXTENSIONS = ("vector",)


@dataclass(frozen=True)
class DatabasePlan:
    """The database to create and its two roles."""

    database: str
    owner_role: str
    owner_password: str
    app_role: str
    app_password: str


class BootstrapError(ValueError):
    """The URLs given to bootstrap do not describe one database and two roles."""


def plan_from_urls(owner_url: str, app_url: str) -> DatabasePlan:
    """The roles, passwords and database named by the owner's and the app role's URLs."""
    owner, app = urlsplit(owner_url), urlsplit(app_url)
    database = unquote(owner.path.lstrip("/"))
    if not database or database != unquote(app.path.lstrip("/")):
        raise BootstrapError("MIGRATION_DATABASE_URL and DATABASE_URL must name the same database")
    if not (owner.username and owner.password and app.username and app.password):
        raise BootstrapError(
            "MIGRATION_DATABASE_URL and DATABASE_URL must each carry a user name and password"
        )
    if owner.username == app.username:
        raise BootstrapError("the schema owner and the app role must be different roles")
    return DatabasePlan(
        database=database,
        owner_role=unquote(owner.username),
        owner_password=unquote(owner.password),
        app_role=unquote(app.username),
        app_password=unquote(app.password),
    )


# The databases every PostgreSQL has.
SHARED_DATABASES = ("postgres", "template1")


async def bootstrap_database(superuser_dsn: str, plan: DatabasePlan) -> None:
    """Creates (or updates) both roles, the database owned by the owner role, and the extensions."""
    conn = await asyncpg.connect(superuser_dsn)
    try:
        await _ensure_role(conn, plan.owner_role, plan.owner_password, "NOSUPERUSER NOCREATEROLE")
        await _ensure_role(
            conn,
            plan.app_role,
            plan.app_password,
            "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 50",
        )
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", plan.database
        )
        if not exists:
            await _execute_formatted(
                conn, "CREATE DATABASE %I OWNER %I", plan.database, plan.owner_role
            )
            log.info("bootstrap.database_created", database=plan.database)
        # PostgreSQL lets every role (PUBLIC) connect to the maintenance database and the
        # template; taken back, the service's roles reach their own database only.
        # Superusers keep it.
        for shared in SHARED_DATABASES:
            await _execute_formatted(conn, "REVOKE CONNECT ON DATABASE %I FROM PUBLIC", shared)
    finally:
        await conn.close()

    conn = await asyncpg.connect(superuser_dsn, database=plan.database)
    try:
        for extension in EXTENSIONS:
            await _execute_formatted(conn, "CREATE EXTENSION IF NOT EXISTS %I", extension)
        await _execute_formatted(conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", plan.database)
        await _execute_formatted(
            conn, "GRANT CONNECT ON DATABASE %I TO %I", plan.database, plan.app_role
        )
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await _execute_formatted(conn, "ALTER SCHEMA public OWNER TO %I", plan.owner_role)
    finally:
        await conn.close()
    log.info("bootstrap.done", database=plan.database, owner=plan.owner_role, app=plan.app_role)


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str, attributes: str) -> None:
    exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    verb = "ALTER" if exists else "CREATE"
    await _execute_formatted(conn, f"{verb} ROLE %I LOGIN {attributes} PASSWORD %L", role, password)


async def _execute_formatted(conn: asyncpg.Connection, template: str, *values: str) -> None:
    """Runs DDL whose identifiers and literals are quoted by PostgreSQL's own `format()`."""
    statement = await conn.fetchval(
        f"SELECT format($1, {', '.join(f'${i + 2}::text' for i in range(len(values)))})",
        template,
        *values,
    )
    await conn.execute(statement)
