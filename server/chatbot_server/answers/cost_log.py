"""Ledger rows for model calls made outside an answer (paid embedding endpoints)."""

from __future__ import annotations

import asyncpg
import structlog

from chatbot_server.governance.budget import Budget
from chatbot_server.governance.caller import current_caller
from chatbot_server.money.ledger_store import AnswerLogEntry, record_call
from chatbot_server.money.pricing import to_usd
from chatbot_server.platform.call_context import current_call
from chatbot_server.retrieval.embeddings import EmbeddingUsage

log = structlog.get_logger(__name__)


async def record_embedding_usage(pool: asyncpg.Pool, budget: Budget, usage: EmbeddingUsage) -> None:
    """One ledger row per call to a paid embedding endpoint: tokens, cost, latency, error.
    Its cost counts toward the day's budget (the caller's key's too, for a search)."""
    call = current_call()
    spent = await record_call(
        pool,
        AnswerLogEntry(
            request_id=call.request_id if call else "",
            method=call.method if call else "ingestion/embeddings",
            identity=call.identity if call else "ingestion-worker",
            api_key_id=api_key.id if (api_key := current_caller().api_key) else None,
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
