"""`answer_logs`, the ledger of model calls: every statement on the table lives here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias
from uuid import UUID

import asyncpg

# A pool or a connection inside a transaction: both run statements.
Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


@dataclass(frozen=True)
class AnswerLogEntry:
    """One model call (an answer's, or a paid embedding call's), as the ledger records it."""

    request_id: str
    method: str
    identity: str
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
    finish_reason: str = "stop"
    error_type: str = ""
    error_message: str = ""


async def insert_answer_log(executor: Executor, entry: AnswerLogEntry) -> None:
    await executor.execute(
        """
        INSERT INTO answer_logs (
            request_id, method, identity, conversation_id, message_id, question, llm_model,
            embedding_model, prompt_tokens, completion_tokens, total_tokens, cost_micro_usd,
            cost_source, total_ms, retrieval_ms, generation_ms, first_token_ms,
            chunks_retrieved, citation_count, top_similarity, finish_reason, error_type,
            error_message)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9::integer + $10::integer, $11, $12, $13,
                $14, $15,
                $16, $17, $18, $19, $20, $21, $22)
        """,
        entry.request_id, entry.method, entry.identity, entry.conversation_id,
        entry.message_id, entry.question, entry.llm_model, entry.embedding_model,
        entry.prompt_tokens, entry.completion_tokens, entry.cost_micro_usd, entry.cost_source,
        entry.total_ms, entry.retrieval_ms, entry.generation_ms, entry.first_token_ms,
        entry.chunks_retrieved, entry.citation_count, entry.top_similarity,
        entry.finish_reason, entry.error_type, entry.error_message,
    )  # fmt: skip
