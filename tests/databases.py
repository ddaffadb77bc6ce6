"""Real PostgreSQL for tests: an embedded cluster, or the server named by DATABASE_URL."""

from __future__ import annotations

import secrets
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from chatbot_server.platform.bootstrap import DatabasePlan, bootstrap_database
from chatbot_server.platform.database import migrate
from chatbot_server.platform.embedded_postgres import EmbeddedPostgres


@dataclass(frozen=True)
class MigratedDatabase:
    """A migrated database with its schema owner and restricted app role."""

    name: str
    superuser_url: str
    owner_url: str
    app_url: str
    app_role: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_embedded_cluster() -> EmbeddedPostgres:
    """A fresh, started cluster in a temporary folder on a free port."""
    cluster = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="chatbot-test-pg-")), free_port())
    cluster.start()
    return cluster


def with_login(url: str, role: str, password: str, database: str) -> str:
    """`url` with another role, password and database."""
    parts = urlsplit(url)
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(database, safe=""), parts.query, ""))


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database, same login."""
    parts = urlsplit(url)
    return with_login(url, unquote(parts.username or ""), unquote(parts.password or ""), database)


async def create_test_database(superuser_url: str, name: str) -> MigratedDatabase:
    """Creates roles and a database named `name`, then migrates it as its owner."""
    plan = DatabasePlan(
        database=name,
        owner_role=f"{name}_owner",
        owner_password=secrets.token_urlsafe(16),
        app_role=f"{name}_app",
        app_password=secrets.token_urlsafe(16),
    )
    await bootstrap_database(superuser_url, plan)
    owner_url = with_login(superuser_url, plan.owner_role, plan.owner_password, name)
    await migrate(owner_url, plan.app_role)
    return MigratedDatabase(
        name=name,
        superuser_url=superuser_url,
        owner_url=owner_url,
        app_url=with_login(superuser_url, plan.app_role, plan.app_password, name),
        app_role=plan.app_role,
    )
