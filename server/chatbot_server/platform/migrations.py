"""Numbered SQL migrations, applied in order by the schema owner and recorded in a table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant shared by every migrator: concurrent runs (several replicas) queue up on it.
_ADVISORY_LOCK_KEY = 7_310_412_001


class MigrationError(RuntimeError):
    """The migrations cannot be applied, or the database is not at the version this code needs."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Reads `NNNN_name.sql` files, checking that versions run 1, 2, 3... without gaps."""
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {expected:04d} is missing before {migration.name}")
    return migrations


async def apply_migrations(
    conn: asyncpg.Connection, app_role: str, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Applies the migrations not yet recorded, each in its own transaction, then grants the
    app role row privileges on every table. Returns the migrations applied (none on a re-run)."""
    migrations = load_migrations() if migrations is None else migrations
    await _require_vector(conn)
    await _require_role(conn, app_role)
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied_versions = {
            row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
        }
        applied = []
        for migration in migrations:
            if migration.version in applied_versions:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration.applied", version=migration.version, name=migration.name)
            applied.append(migration)
        await _grant_row_privileges(conn, app_role)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration, 0 when none was."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def require_current_schema(conn: asyncpg.Connection) -> None:
    """Fails unless every migration this code ships has been applied."""
    await _require_vector(conn)
    latest = len(load_migrations())
    current = await schema_version(conn)
    if current < latest:
        raise MigrationError(
            f"the database schema is at version {current} but this server needs {latest}: "
            "run `chatbot-server migrate` with MIGRATION_DATABASE_URL set to the schema owner's URL"
        )


async def _grant_row_privileges(conn: asyncpg.Connection, app_role: str) -> None:
    statements = [
        "GRANT USAGE ON SCHEMA public TO %I",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I",
        # The server reads the schema version at start but never writes it.
        "REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM %I",
        # The audit trail is append-only.
        "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM %I",
    ]
    for template in statements:
        statement = await conn.fetchval("SELECT format($1, $2::text)", template, app_role)
        await conn.execute(statement)


async def _require_vector(conn: asyncpg.Connection) -> None:
    installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if installed is not None:
        return
    available = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    )
    database = await conn.fetchval("SELECT current_database()")
    if available is None:
        how = (
            "pgvector is not installed on that PostgreSQL server: install it (for example the "
            "`pgvector/pgvector:pg18` image, or the `postgresql-18-pgvector` package from the "
            "PostgreSQL apt repository), then as a superuser run "
            f"`CREATE EXTENSION vector;` in database {database}"
        )
    else:
        how = (
            f"pgvector {available} is installed but not enabled: as a superuser run "
            f"`CREATE EXTENSION vector;` in database {database}"
        )
    raise MigrationError(f"the `vector` extension is missing from database {database}: {how}")


async def _require_role(conn: asyncpg.Connection, role: str) -> None:
    exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    if not exists:
        raise MigrationError(
            f"the app role {role} does not exist: create it ("
            "CREATE ROLE ... LOGIN as a superuser) or set DATABASE_APP_ROLE to the role the "
            "server connects as"
        )
