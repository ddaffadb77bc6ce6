"""An external PostgreSQL set up as in production: bootstrap as superuser, migrate as owner,
serve as the restricted role (the order docker-compose.yaml runs them in)."""

from __future__ import annotations

import secrets

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.databases import MigratedDatabase, free_port, with_login
from tests.processes import ServerProcess, run_command


def operator_env(superuser_url: str, name: str) -> dict[str, str]:
    """The three URLs an operator sets for a database `name` and its two new roles."""
    return {
        "SUPERUSER_DATABASE_URL": superuser_url,
        "MIGRATION_DATABASE_URL": with_login(
            superuser_url, f"{name}_owner", secrets.token_hex(8), name
        ),
        "DATABASE_URL": with_login(superuser_url, f"{name}_app", secrets.token_hex(8), name),
        "DATABASE_APP_ROLE": f"{name}_app",
    }


async def test_bootstrap_migrate_serve(database: MigratedDatabase) -> None:
    env = operator_env(database.superuser_url, "chatbot_operator_flow")
    app_url = env["DATABASE_URL"]

    code, stderr, events = await run_command("bootstrap", env)
    assert code == 0, stderr
    assert "bootstrap.done" in events

    code, stderr, events = await run_command("migrate", env)
    assert code == 0, stderr
    assert events.count("migration.applied") >= 1

    code, stderr, events = await run_command("migrate", env)
    assert code == 0, stderr
    assert "migration.applied" not in events

    app = await asyncpg.connect(app_url)
    try:
        assert await app.fetchval("SELECT count(*) FROM documents") == 0
        assert not await app.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await app.close()

    server = ServerProcess({**env, "GRPC_ADDRESS": f"127.0.0.1:{free_port()}"})
    await server.start()
    try:
        started = await server.wait_for_event("server.started")
        async with grpc.aio.insecure_channel(str(started["address"])) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.kill()


async def test_server_refuses_a_database_that_was_not_migrated(database: MigratedDatabase) -> None:
    env = {
        **operator_env(database.superuser_url, "chatbot_unmigrated"),
        "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    code, stderr, _ = await run_command("bootstrap", env)
    assert code == 0, stderr
    code, stderr, _ = await run_command("serve", env)
    assert code == 2
    assert "schema is at version 0" in stderr
    assert "chatbot-server migrate" in stderr


async def test_bootstrap_refuses_urls_for_different_databases(database: MigratedDatabase) -> None:
    env = {
        "SUPERUSER_DATABASE_URL": database.superuser_url,
        "MIGRATION_DATABASE_URL": with_login(database.superuser_url, "o", "p", "one"),
        "DATABASE_URL": with_login(database.superuser_url, "a", "p", "two"),
    }
    code, stderr, _ = await run_command("bootstrap", env)
    assert code == 2
    assert "must name the same database" in stderr


async def test_migrate_without_owner_url_explains_which_url_it_needs() -> None:
    code, stderr, _ = await run_command(
        "migrate", {"DATABASE_URL": "postgresql://app:secret@127.0.0.1:1/chatbot"}
    )
    assert code == 2
    assert "migrate needs MIGRATION_DATABASE_URL" in stderr
