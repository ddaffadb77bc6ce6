"""The two database roles: the owner migrates, the app role only reads and writes rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from chatbot_server.platform.database import migrate
from chatbot_server.platform.migrations import MigrationError, load_migrations, schema_version
from tests.databases import MigratedDatabase, with_database

TABLES = {
    "documents",
    "document_contents",
    "chunks",
    "conversations",
    "messages",
    "feedback",
    "budget_days",
    "budget_reservations",
    "experiments",
    "answer_logs",
    "api_keys",
    "schema_migrations",
    "lexeme_stats",
    "chunk_totals",
    "section_embeddings",
    "uploads",
    "upload_pieces",
    "answer_leases",
    "audit_events",
}


@pytest_asyncio.fixture
async def app_conn(database: MigratedDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.app_url)
    yield conn
    await conn.close()


async def test_schema_has_every_table_and_the_search_indexes(
    app_conn: asyncpg.Connection,
) -> None:
    tables = {
        row["tablename"]
        for row in await app_conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert tables == TABLES
    indexes = {
        row["indexname"]: row["indexdef"]
        for row in await app_conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
        )
    }
    # One HNSW index per vector dimension, used by searches that name it.
    for dimensions in (384, 512):
        definition = indexes[f"chunks_embedding_{dimensions}_hnsw_idx"]
        assert f"USING hnsw (((embedding)::vector({dimensions})) vector_cosine_ops)" in definition
        assert f"WHERE (vector_dims(embedding) = {dimensions})" in definition
    assert "USING gin (content_tsv)" in indexes["chunks_content_tsv_idx"]


async def test_app_role_reads_and_writes_rows(app_conn: asyncpg.Connection) -> None:
    async with app_conn.transaction():
        key_id = await app_conn.fetchval(
            "INSERT INTO api_keys (name, role, prefix, secret_sha256) "
            "VALUES ('roles-test', 'client', 'ck_1', repeat('a', 64)) RETURNING id"
        )
        await app_conn.execute("UPDATE api_keys SET name = 'renamed' WHERE id = $1", key_id)
        assert (
            await app_conn.fetchval("SELECT name FROM api_keys WHERE id = $1", key_id) == "renamed"
        )
        await app_conn.execute("DELETE FROM api_keys WHERE id = $1", key_id)
        assert await app_conn.fetchval("SELECT count(*) FROM api_keys WHERE id = $1", key_id) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE documents",
        "ALTER TABLE documents ADD COLUMN sneaky text",
        "TRUNCATE documents",
        "CREATE TABLE sneaky (id int)",
        "CREATE INDEX sneaky_idx ON documents (title)",
        "CREATE ROLE sneaky LOGIN",
        "INSERT INTO schema_migrations (version, name) VALUES (999, 'sneaky')",
        "DELETE FROM schema_migrations",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ],
)
async def test_app_role_cannot_change_the_schema(
    app_conn: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute(statement)


async def test_app_role_cannot_create_a_database(app_conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute("CREATE DATABASE sneaky")


async def test_migrations_run_twice_are_a_no_op(database: MigratedDatabase) -> None:
    assert await migrate(database.owner_url, database.app_role) == 0
    conn = await asyncpg.connect(database.owner_url)
    try:
        assert await schema_version(conn) == len(load_migrations())
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
    finally:
        await conn.close()


async def test_migrate_without_vector_extension_says_how_to_install_it(
    database: MigratedDatabase,
) -> None:
    admin = await asyncpg.connect(database.superuser_url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS chatbot_no_vector")
        await admin.execute("CREATE DATABASE chatbot_no_vector")
    finally:
        await admin.close()
    bare_url = with_database(database.superuser_url, "chatbot_no_vector")
    with pytest.raises(MigrationError) as raised:
        await migrate(bare_url, database.app_role)
    message = str(raised.value)
    assert "`vector` extension is missing from database chatbot_no_vector" in message
    assert "CREATE EXTENSION vector;" in message


@pytest.mark.parametrize("database_name", ["postgres", "template1"])
async def test_app_role_connects_to_the_service_database_only(
    database: MigratedDatabase, database_name: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(with_database(database.app_url, database_name))
