"""Connecting to PostgreSQL: the embedded cluster or the one named by DATABASE_URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import structlog

from chatbot_server.config import DatabaseSettings
from chatbot_server.platform.bootstrap import DatabasePlan, bootstrap_database
from chatbot_server.platform.embedded_postgres import EmbeddedPostgres
from chatbot_server.platform.migrations import apply_migrations, require_current_schema
from chatbot_server.platform.vector_codec import register_vector_codec

log = structlog.get_logger(__name__)

EMBEDDED_DATABASE = "chatbot"
EMBEDDED_OWNER_ROLE = "chatbot_owner"


class DatabaseUnavailableError(RuntimeError):
    """PostgreSQL could not be reached at start."""


# What a call meets when PostgreSQL is down, restarting, refusing the app role or gone
# from under an open connection: a condition to retry, not a bug. asyncpg raises
# InternalClientError ("cannot switch to state …") when a pooled connection the server
# has just terminated is used again (MagicStack/asyncpg#1069).
UNREACHABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
# Any failed database call: unreachable, or refused by the server.
DATABASE_ERRORS = (*UNREACHABLE_ERRORS, asyncpg.PostgresError)


@dataclass(frozen=True)
class EmbeddedDatabase:
    """A started embedded cluster with the URLs of its two roles."""

    cluster: EmbeddedPostgres
    owner_url: str
    app_url: str
    # False when a server in the same folder had the cluster running already.
    started_here: bool

    async def stop_if_started_here(self) -> None:
        if self.started_here:
            await asyncio.to_thread(self.cluster.stop)


async def start_embedded(settings: DatabaseSettings) -> EmbeddedDatabase:
    """Starts the embedded cluster, creates roles and database, and migrates the schema."""
    cluster = EmbeddedPostgres(
        settings.embedded_dir, settings.embedded_port, settings.embedded_shared_buffers_mb
    )
    started_here = await asyncio.to_thread(cluster.start)
    credentials = cluster.credentials
    plan = DatabasePlan(
        database=EMBEDDED_DATABASE,
        owner_role=EMBEDDED_OWNER_ROLE,
        owner_password=credentials.owner,
        app_role=settings.app_role,
        app_password=credentials.app,
    )
    await bootstrap_database(cluster.superuser_url(), plan)
    owner_url = cluster.url(EMBEDDED_OWNER_ROLE, credentials.owner, EMBEDDED_DATABASE)
    await migrate(owner_url, settings.app_role)
    log.info(
        "database.embedded",
        data_dir=str(cluster.data_dir),
        port=cluster.port,
        database=EMBEDDED_DATABASE,
        app_role=settings.app_role,
    )
    return EmbeddedDatabase(
        cluster=cluster,
        owner_url=owner_url,
        app_url=cluster.url(settings.app_role, credentials.app, EMBEDDED_DATABASE),
        started_here=started_here,
    )


@asynccontextmanager
async def command_pool(settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    """A small app-role pool for a one-off command, against DATABASE_URL or the embedded
    cluster; an embedded cluster that a running server uses is left running."""
    embedded = await start_embedded(settings) if settings.embedded else None
    url = embedded.app_url if embedded is not None else settings.url
    assert url is not None
    try:
        pool = await open_pool(url, 1, 2, settings.statement_timeout_seconds)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await embedded.stop_if_started_here()


async def migrate(owner_url: str, app_role: str) -> int:
    """Applies pending migrations as the schema owner; returns how many were applied."""
    conn = await connect(owner_url)
    try:
        return len(await apply_migrations(conn, app_role))
    finally:
        await conn.close()


async def connect(url: str) -> asyncpg.Connection:
    """One connection, with an error that names the server when it cannot be reached."""
    try:
        return await asyncpg.connect(url, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {describe(url)}: {error}"
        ) from error


# Session settings of the app role's connections, for search:
# - keep scanning the HNSW graph until enough rows pass the filters (pgvector 0.8);
# - plan every execution for its own parameters. asyncpg prepares statements, and after five
#   runs PostgreSQL may switch to a generic plan; for the search statement that plan ignored
#   the question's words and filters and took 1.1 s instead of 29 ms at 100k chunks. The
#   service's other statements are small, and planning them each time costs microseconds.
SEARCH_SESSION_SETTINGS = {
    "hnsw.iterative_scan": "relaxed_order",
    "plan_cache_mode": "force_custom_plan",
}


async def open_pool(
    url: str, min_size: int, max_size: int, statement_timeout_seconds: float
) -> asyncpg.Pool:
    """The app role's pool, after checking that the schema is current. PostgreSQL ends any
    statement that runs longer than `statement_timeout_seconds`, so a call without a
    deadline cannot wait forever on a lock or a runaway query; a second later the client
    gives up too, for a server that has stopped answering altogether."""
    conn = await connect(url)
    try:
        await require_current_schema(conn)
    finally:
        await conn.close()
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=register_vector_codec,
        reset=_keep_session,
        server_settings={
            "statement_timeout": str(round(statement_timeout_seconds * 1000)),
            **SEARCH_SESSION_SETTINGS,
        },
        command_timeout=statement_timeout_seconds + 1,
        # New connections too: a stopped server accepts the TCP connection, then says nothing.
        timeout=statement_timeout_seconds + 1,
    )
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset query on release (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one more round trip per use of the pool, for state the service never
    leaves on a session: it takes no advisory locks, cursors or LISTENs on pooled
    connections and changes settings only inside transactions. asyncpg still rolls back a
    transaction left open."""


class PostgresProbe:
    """`SELECT 1` for the health check, on a connection of its own: a probe that overruns
    is abandoned by closing that connection, which never waits on the server."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self._conn: asyncpg.Connection | None = None

    async def __call__(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._url, timeout=self._timeout)
        await self._conn.fetchval("SELECT 1")

    def abandon(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=self._timeout)
            self._conn = None


def describe(url: str) -> str:
    """host:port/database of a URL, without its credentials, for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
