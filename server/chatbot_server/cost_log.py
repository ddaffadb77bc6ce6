"""Ledger rows for model calls made outside an answer (paid embedding endpoints)."""

from __future__ import annotations

import asyncpg
import structlog

from chatbot_server.answer_log_store import AnswerLogEntry, insert_answer_log
from chatbot_server.call_context import current_call
from chatbot_server.embeddings import EmbeddingUsage
from chatbot_server.pricing import to_usd

log = structlog.get_logger(__name__)


async def record_embedding_usage(pool: asyncpg.Pool, usage: EmbeddingUsage) -> None:
    """One row per call to a paid embedding endpoint: tokens, cost, latency, error."""
    call = current_call()
    await insert_answer_log(
        pool,
        AnswerLogEntry(
            request_id=call.request_id if call else "",
            method=call.method if call else "ingestion/embeddings",
            identity=call.peer if call else "ingestion-worker",
            embedding_model=usage.model,
            prompt_tokens=usage.prompt_tokens,
            cost_micro_usd=usage.cost_micro_usd,
            cost_source="provider" if usage.cost_from_provider else "pricing_table",
            total_ms=usage.latency_ms,
            finish_reason="error" if usage.error else "stop",
            error_type="EMBEDDING_FAILED" if usage.error else "",
            error_message=usage.error,
        ),
    )
    log.info(
        "embedding.cost",
        model=usage.model,
        tokens=usage.prompt_tokens,
        cost_usd=to_usd(usage.cost_micro_usd),
        ms=usage.latency_ms,
        error=usage.error or None,
    )
