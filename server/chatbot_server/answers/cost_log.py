"""Ledger rows for model calls made outside an answer (paid embedding endpoints)."""

from __future__ import annotations

import asyncpg
import structlog

from chatbot_server.governance.budget import Budget
from chatbot_server.governance.caller import request_facts
from chatbot_server.money.ledger_store import AnswerLogEntry, RequestFacts, record_call
from chatbot_server.money.pricing import to_usd
from chatbot_server.retrieval.embeddings import EmbeddingUsage

log = structlog.get_logger(__name__)
# Embedding calls outside any RPC are the ingestion worker's.
_INGESTION = RequestFacts("", "ingestion/embeddings", "ingestion-worker")


async def record_embedding_usage(pool: asyncpg.Pool, budget: Budget, usage: EmbeddingUsage) -> None:
    """One ledger row per call to a paid embedding endpoint: tokens, cost, latency, error.
    Its cost counts toward the day's budget (the caller's key's too, for a search)."""
    spent = await record_call(
        pool,
        AnswerLogEntry(
            request_facts() or _INGESTION,
            embedding_model=usage.model,
            prompt_tokens=usage.prompt_tokens,
            cost_micro_usd=usage.cost_micro_usd,
            cost_source=usage.cost_source,
            total_ms=usage.latency_ms,
            finish_reason="error" if usage.error else "stop",
            error_type="EMBEDDING_FAILED" if usage.error else "",
            error_message=usage.error,
        ),
    )
    budget.spent(spent)
    log.info(
        "embedding.cost",
        model=usage.model,
        tokens=usage.prompt_tokens,
        cost_usd=to_usd(usage.cost_micro_usd),
        ms=usage.latency_ms,
        error=usage.error or None,
    )
