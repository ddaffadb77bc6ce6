"""`chatbot-server seed` and `chatbot-server clear-data`, run as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest_asyncio

from chatbot_client import ChatbotClient
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import manual_pdf
from tests.processes import run_process
from tests.servers import server_settings, start_server


@pytest_asyncio.fixture(scope="module")
async def seed_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_seed")


async def chatbot_server(
    database: MigratedDatabase, *args: str, environment: str = "development"
) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database.app_url, "ENVIRONMENT": environment}
    env.pop("REDIS_URL", None)
    return await run_process(sys.executable, "-m", "chatbot_server", *args, env=env)


async def counts(database: MigratedDatabase) -> dict[str, int]:
    conn = await asyncpg.connect(database.owner_url)
    try:
        row = await conn.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM documents WHERE seeded) AS documents,
              (SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id
                WHERE d.seeded) AS chunks,
              (SELECT count(*) FROM conversations WHERE seeded) AS conversations,
              (SELECT count(*) FROM documents WHERE NOT seeded) AS real_documents,
              (SELECT count(*) FROM messages m
                WHERE jsonb_array_length(m.citations) > 0 AND NOT EXISTS (
                  SELECT 1 FROM jsonb_array_elements(m.citations) cited
                  WHERE NOT EXISTS (
                    SELECT 1 FROM chunks c WHERE c.id = (cited ->> 'chunk_id')::uuid))
              ) AS answers_citing_real_chunks,
              (SELECT count(*) FROM documents WHERE seeded AND status <> 'READY') AS not_ready
            """
        )
    finally:
        await conn.close()
    return dict(row)


async def test_seed_sizes_make_the_stated_counts_and_clear_spares_real_data(
    seed_database: MigratedDatabase, redis_url: str
) -> None:
    running = await start_server(server_settings(seed_database.app_url, redis_url))
    try:
        async with ChatbotClient(running.address) as client:
            real = await client.upload_document(manual_pdf(), title="A real manual")
            ready = await asyncio.wait_for(client.wait_for_document(real.document.document_id), 120)

            code, out, err = await chatbot_server(seed_database, "seed", "--size", "small")
            assert code == 0, err
            assert "seeded 5 documents (250 chunks) and 20 conversations" in out
            assert await counts(seed_database) == {
                "documents": 5, "chunks": 250, "conversations": 20, "real_documents": 1,
                "answers_citing_real_chunks": 20, "not_ready": 0,
            }  # fmt: skip
            # Seeded chunks are searchable like uploaded ones.
            hits = await client.search("What does a blinking amber LED mean?", tags=["seed"])
            assert hits.results[0].section_title == "Troubleshooting"

            code, out, err = await chatbot_server(
                seed_database, "seed", "--size", "medium", "--clear"
            )
            assert code == 0, err
            assert "removed 5 seeded documents, 20 seeded conversations" in out
            assert await counts(seed_database) == {
                "documents": 20, "chunks": 2_000, "conversations": 100, "real_documents": 1,
                "answers_citing_real_chunks": 100, "not_ready": 0,
            }  # fmt: skip
            kept = await client.get_document(real.document.document_id)
            assert kept.title == "A real manual" and kept.chunk_count == ready.chunk_count > 0

            code, _, err = await chatbot_server(
                seed_database, "seed", "--conversations-only", "--size", "small"
            )
            assert code == 0, err
            assert (await counts(seed_database))["conversations"] == 120
    finally:
        await running.stop()


async def test_seed_is_refused_in_production(seed_database: MigratedDatabase) -> None:
    code, _, err = await chatbot_server(seed_database, "seed", environment="production")
    assert code == 2 and "refused with ENVIRONMENT=production" in err


async def test_clear_data_asks_first_then_empties_every_table_but_the_schema(
    postgres_superuser_url: str,
) -> None:
    database = await create_test_database(postgres_superuser_url, "chatbot_clear")
    code, _, err = await chatbot_server(database, "seed", "--size", "small")
    assert code == 0, err
    code, _, err = await chatbot_server(database, "clear-data")
    assert code == 2 and "add --yes" in err
    assert (await counts(database))["documents"] == 5

    code, out, err = await chatbot_server(database, "clear-data", "--yes")
    assert code == 0, err
    assert "5 documents" in out and "250 chunks" in out and "20 conversations" in out
    conn = await asyncpg.connect(database.owner_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        rows = {
            t["table_name"]: await conn.fetchval(f'SELECT count(*) FROM "{t["table_name"]}"')
            for t in tables
        }
        migrations = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        lexemes_in_use = await conn.fetchval("SELECT count(*) FROM lexeme_stats WHERE chunks > 0")
    finally:
        await conn.close()
    # The audit trail is append-only: it keeps the seeding and the clearing.
    derived = {"schema_migrations", "lexeme_stats", "chunk_totals", "audit_events"}
    assert {table: n for table, n in rows.items() if table not in derived and n} == {}
    assert migrations >= 4 and lexemes_in_use == 0
    assert rows["audit_events"] == 2
    # The schema and the app role's rights survive: the server starts and serves.
    code, _, err = await chatbot_server(database, "seed", "--size", "small", "--documents-only")
    assert code == 0, err
