"""`chatbot-server clear-data`: every row gone; schema, roles and migrations kept."""

from __future__ import annotations

import asyncpg

# Children before parents. `lexeme_stats` and `chunk_totals` follow `chunks` by trigger;
# `schema_migrations` is the schema's own record and stays.
DATA_TABLES = (
    "feedback", "answer_logs", "messages", "conversations", "chunks", "section_embeddings",
    "document_contents", "documents", "upload_pieces", "uploads", "experiments",
    "budget_reservations", "budget_days", "answer_leases",
)  # fmt: skip
KEY_TABLE = "api_keys"


async def clear_data(pool: asyncpg.Pool, *, keep_api_keys: bool) -> dict[str, int]:
    """Deletes the rows of every data table in one transaction; rows deleted per table."""
    tables = DATA_TABLES if keep_api_keys else (*DATA_TABLES, KEY_TABLE)
    deleted = {}
    async with pool.acquire() as conn, conn.transaction():
        for table in tables:
            status = await conn.execute(f"DELETE FROM {table}")
            deleted[table] = int(status.split()[-1])
    return deleted
