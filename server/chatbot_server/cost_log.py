"""Rows of `answer_logs` for model calls made outside an answer (embedding endpoints)."""

from __future__ import annotations

import asyncpg
import structlog

from chatbot_server.call_context import current_call
from chatbot_server.embeddings import EmbeddingUsage
from chatbot_server.pricing import to_usd

log = structlog.get_logger(__name__)


async def record_embedding_usage(pool: asyncpg.Pool, usage: EmbeddingUsage) -> None:
    """One row per call to a paid embedding endpoint: tokens, cost, latency, error."""
    call = current_call()
    await pool.execute(
        """
        INSERT INTO answer_logs (request_id, method, identity, embedding_model, prompt_tokens,
                                 total_tokens, cost_micro_usd, cost_source, total_ms,
                                 finish_reason, error_type, error_message)
        VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11)
        """,
        call.request_id if call else "",
        call.method if call else "ingestion/embeddings",
        call.peer if call else "ingestion-worker",
        usage.model, usage.prompt_tokens, usage.cost_micro_usd,
        "provider" if usage.cost_from_provider else "pricing_table",
        usage.latency_ms,
        "error" if usage.error else "stop",
        "EMBEDDING_FAILED" if usage.error else "",
        usage.error,
    )  # fmt: skip
    log.info(
        "embedding.cost",
        model=usage.model,
        tokens=usage.prompt_tokens,
        cost_usd=to_usd(usage.cost_micro_usd),
        ms=usage.latency_ms,
        error=usage.error or None,
    )
