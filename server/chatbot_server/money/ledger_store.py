"""The ledger: `answer_logs`, one row per model call, and its daily running totals.

Every statement on `answer_logs` lives here. A row and its cost's addition to the day's
totals (`budget_days`, globally and for the caller's API key) are one statement, and the
call's budget reservation is released in the same transaction, so the budget's spent
figure always equals the sum of the ledger's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from chatbot_server.money import budget_store

GLOBAL_SCOPE = "global"


@dataclass(frozen=True)
class RequestFacts:
    """Who made a call and which call it was: made once where the call is served, and
    carried unchanged to its ledger row."""

    request_id: str
    method: str
    identity: str
    api_key_id: UUID | None = None


@dataclass(frozen=True)
class AnswerLogEntry:
    """One model call (an answer's, or a paid embedding call's), as the ledger records it."""

    request: RequestFacts
    llm_model: str = ""
    embedding_model: str = ""
    conversation_id: UUID | None = None
    message_id: UUID | None = None
    question: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micro_usd: int = 0
    cost_source: str = "free"
    total_ms: int = 0
    retrieval_ms: int = 0
    generation_ms: int = 0
    first_token_ms: int = 0
    chunks_retrieved: int = 0
    citation_count: int = 0
    top_similarity: float = 0.0
    experiment_id: UUID | None = None
    experiment_name: str = ""
    experiment_variant: str = ""
    finish_reason: str = "stop"
    error_type: str = ""
    error_message: str = ""
    grounding: str = "unspecified"


async def record_call(
    pool: asyncpg.Pool, entry: AnswerLogEntry, reservation_ids: Sequence[UUID] = ()
) -> int:
    """Writes the row, adds its cost to today's totals and releases the call's reservations;
    returns the global total of the row's day, in micro-USD."""
    async with pool.acquire() as conn, conn.transaction():
        return await record_call_in(conn, entry, reservation_ids)


async def record_call_in(
    conn: asyncpg.Connection, entry: AnswerLogEntry, reservation_ids: Sequence[UUID] = ()
) -> int:
    """`record_call` within the caller's transaction."""
    request = entry.request
    scopes = (
        [GLOBAL_SCOPE] if request.api_key_id is None else [GLOBAL_SCOPE, str(request.api_key_id)]
    )
    await budget_store.release(conn, reservation_ids)
    spent: int = await conn.fetchval(
        """
        WITH logged AS (
            INSERT INTO answer_logs (
                request_id, method, identity, api_key_id, conversation_id, message_id,
                question, llm_model, embedding_model, prompt_tokens, completion_tokens,
                total_tokens, cost_micro_usd, cost_source, total_ms, retrieval_ms,
                generation_ms, first_token_ms, chunks_retrieved, citation_count,
                top_similarity, experiment_id, experiment_name, experiment_variant,
                finish_reason, error_type, error_message, grounding)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                    $10::integer + $11::integer, $12, $13, $14, $15, $16, $17, $18, $19,
                    $20, $21, $22, $23, $24, $25, $26, $28)
            RETURNING cost_micro_usd, (created_at AT TIME ZONE 'UTC')::date AS day
        ), totals AS (
            INSERT INTO budget_days AS b (day, scope, spent_micro_usd)
            SELECT logged.day, scope, logged.cost_micro_usd
            FROM logged, unnest($27::text[]) AS scope
            ORDER BY scope
            ON CONFLICT (day, scope)
            DO UPDATE SET spent_micro_usd = b.spent_micro_usd + excluded.spent_micro_usd
            RETURNING b.scope, b.spent_micro_usd
        )
        SELECT spent_micro_usd FROM totals WHERE scope = 'global'
        """,
        request.request_id, request.method, request.identity, request.api_key_id,
        entry.conversation_id, entry.message_id, entry.question, entry.llm_model,
        entry.embedding_model, entry.prompt_tokens, entry.completion_tokens,
        entry.cost_micro_usd, entry.cost_source, entry.total_ms, entry.retrieval_ms,
        entry.generation_ms, entry.first_token_ms, entry.chunks_retrieved,
        entry.citation_count, entry.top_similarity, entry.experiment_id,
        entry.experiment_name, entry.experiment_variant, entry.finish_reason,
        entry.error_type, entry.error_message, scopes, entry.grounding,
    )  # fmt: skip
    return spent


@dataclass(frozen=True)
class AnswerLogFilter:
    identity: str | None = None
    conversation_id: UUID | None = None
    llm_model: str | None = None
    errors_only: bool = False
    experiment_id: UUID | None = None
    start: datetime | None = None
    end: datetime | None = None


async def list_answer_logs(
    pool: asyncpg.Pool, where: AnswerLogFilter, limit: int, after: tuple[datetime, UUID] | None
) -> list[asyncpg.Record]:
    rows = await pool.fetch(
            """
            SELECT * FROM answer_logs
            WHERE ($1::text IS NULL OR identity = $1)
              AND ($2::uuid IS NULL OR conversation_id = $2)
              AND ($3::text IS NULL OR llm_model = $3)
              AND (NOT $4 OR error_type <> '')
              AND ($5::uuid IS NULL OR experiment_id = $5)
              AND ($6::timestamptz IS NULL OR created_at >= $6)
              AND ($7::timestamptz IS NULL OR created_at < $7)
              AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::uuid))
            ORDER BY created_at DESC, id DESC
            LIMIT $10
            """,
            where.identity,
            where.conversation_id,
            where.llm_model,
            where.errors_only,
            where.experiment_id,
            where.start,
            where.end,
            *(after or (None, None)),
            limit,
        )  # fmt: skip
    return list(rows)


_TOTALS = """
    count(*) AS request_count,
    coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
    coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens,
    coalesce(sum(cost_micro_usd), 0)::bigint AS cost_micro_usd,
    coalesce(avg(total_ms), 0)::float8 AS mean_latency_ms,
    count(*) FILTER (WHERE error_type <> '') AS error_count
"""


async def cost_totals(pool: asyncpg.Pool, start: datetime, group: str | None) -> list[Any]:
    """Totals of the calls since `start`, whole (`group` None) or per model, method, day or
    experiment variant."""
    key = {
        None: "'total'",
        # An answer without a model is offline; a row without an answer, an embedding call.
        "model": "CASE WHEN llm_model <> '' THEN llm_model "
        "WHEN message_id IS NOT NULL THEN 'offline' ELSE embedding_model END",
        "method": "method",
        "day": "to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')",
        "variant": "experiment_name || '/' || experiment_variant",
    }[group]
    only_variants = "AND experiment_variant <> ''" if group == "variant" else ""
    return list(
        await pool.fetch(
            f"SELECT {key} AS key, {_TOTALS} FROM answer_logs "
            f"WHERE created_at >= $1 {only_variants} GROUP BY 1 ORDER BY cost_micro_usd DESC",
            start,
        )
    )


async def variant_results(pool: asyncpg.Pool, experiment_id: UUID) -> list[Any]:
    """Per variant of an experiment: answers, cost, latency percentiles, feedback."""
    return list(
        await pool.fetch(
            """
            SELECT a.experiment_variant AS variant,
                   count(*) AS answer_count,
                   coalesce(sum(a.cost_micro_usd), 0)::bigint AS cost_micro_usd,
                   coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY a.total_ms), 0)::float8
                       AS p50_latency_ms,
                   coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY a.total_ms), 0)::float8
                       AS p95_latency_ms,
                   count(*) FILTER (WHERE a.error_type <> '') AS error_count,
                   coalesce(sum(f.positive), 0)::bigint AS positive_count,
                   coalesce(sum(f.negative), 0)::bigint AS negative_count
            FROM answer_logs a
            LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE rating = 'positive') AS positive,
                       count(*) FILTER (WHERE rating = 'negative') AS negative
                FROM feedback WHERE feedback.message_id = a.message_id
            ) f ON true
            WHERE a.experiment_id = $1
            GROUP BY a.experiment_variant
            ORDER BY a.experiment_variant
            """,
            experiment_id,
        )
    )
