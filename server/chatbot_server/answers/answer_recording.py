"""What an answer leaves behind once it ends, however it ends: outcome → cost → rows.

The answer message and its ledger row are written for completed, failed and cancelled
answers alike; a call cut short before the provider reported its usage is estimated from
the characters sent and received.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from chatbot_server.answers import chat_store
from chatbot_server.answers.prompting import CHARS_PER_TOKEN
from chatbot_server.governance.budget import Budget
from chatbot_server.governance.experiments import Assignment
from chatbot_server.money.ledger_store import AnswerLogEntry, record_call
from chatbot_server.money.pricing import FREE, call_cost_micro_usd, to_usd
from chatbot_server.platform import metrics
from chatbot_server.platform.database import DATABASE_ERRORS
from chatbot_server.platform.errors import ServiceError
from chatbot_server.retrieval.hybrid_search import Hit

log = structlog.get_logger(__name__)

_MESSAGE_STATUS = {"error": "failed", "cancelled": "cancelled"}


@dataclass
class AnswerOutcome:
    """What is written once the answer ends, however it ends."""

    text: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "cancelled"
    error: ServiceError | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # True when the tokens were estimated from characters rather than reported.
    tokens_estimated: bool = False
    provider_cost_usd: float | None = None
    # Characters sent to the model, to estimate the tokens of a call cut short before the
    # provider reported its usage.
    prompt_chars: int = 0
    # Whether the provider took the request; one it refused (429, 5xx, 400) cost nothing.
    provider_accepted: bool = False
    hits: list[Hit] = field(default_factory=list)
    retrieval_ms: int = 0
    first_token_ms: int = 0
    # Whether the documents answered: "answered", "not_found", or "unspecified" when the
    # answer ended before that was known.
    grounding: str = "unspecified"


@dataclass(frozen=True)
class AnswerIdentity:
    """Who asked, and the ids under which the answer is stored."""

    request_id: str
    method: str
    identity: str
    api_key_id: UUID | None
    question: str
    conversation_id: UUID
    message_id: UUID
    model: str
    embedding_model: str
    assignment: Assignment | None
    # The budget reservations the ledger row settles.
    reservation_ids: list[UUID]


def cost_of(model: str, outcome: AnswerOutcome) -> tuple[int, str]:
    """Micro-USD and where the figure comes from (see `pricing.call_cost_micro_usd`)."""
    if not model:
        return 0, FREE
    return call_cost_micro_usd(
        model,
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.provider_cost_usd,
        outcome.tokens_estimated,
    )


def estimate_unreported_usage(outcome: AnswerOutcome) -> None:
    """A cancelled or failed call that the provider took still spent tokens; without the
    provider's figures, estimate them from the characters sent and received."""
    if outcome.provider_accepted and not (outcome.prompt_tokens or outcome.completion_tokens):
        outcome.prompt_tokens = outcome.prompt_chars // CHARS_PER_TOKEN
        outcome.completion_tokens = len("".join(outcome.text)) // CHARS_PER_TOKEN
        outcome.tokens_estimated = True


def elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def record_answer(
    pool: asyncpg.Pool,
    budget: Budget,
    answer: AnswerIdentity,
    question_stored: asyncio.Future[None],
    outcome: AnswerOutcome,
    started: float,
) -> None:
    """Writes the answer message and its ledger row, which settles the call's budget
    reservation to its real cost; logs `answer.finished`."""
    estimate_unreported_usage(outcome)
    micro, source = cost_of(answer.model, outcome)
    total_ms = elapsed_ms(started)
    try:
        await question_stored
        await chat_store.insert_message(
            pool, answer.conversation_id, "assistant", "".join(outcome.text),
            message_id=answer.message_id, citations=outcome.citations,
            status=_MESSAGE_STATUS.get(outcome.finish_reason, "complete"),
            model=answer.model, request_id=answer.request_id,
        )  # fmt: skip
        assignment = answer.assignment
        spent = await record_call(
            pool,
            AnswerLogEntry(
                request_id=answer.request_id,
                method=answer.method,
                identity=answer.identity,
                api_key_id=answer.api_key_id,
                conversation_id=answer.conversation_id,
                message_id=answer.message_id,
                question=answer.question,
                llm_model=answer.model,
                embedding_model=answer.embedding_model,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                cost_micro_usd=micro,
                cost_source=source,
                total_ms=total_ms,
                retrieval_ms=outcome.retrieval_ms,
                generation_ms=max(0, total_ms - outcome.retrieval_ms),
                first_token_ms=outcome.first_token_ms,
                chunks_retrieved=len(outcome.hits),
                citation_count=len(outcome.citations),
                top_similarity=max((h.candidate.similarity for h in outcome.hits), default=0.0),
                experiment_id=assignment.experiment_id if assignment else None,
                experiment_name=assignment.experiment_name if assignment else "",
                experiment_variant=assignment.variant.name if assignment else "",
                finish_reason=outcome.finish_reason,
                error_type=outcome.error.reason if outcome.error else "",
                error_message=outcome.error.message if outcome.error else "",
                grounding=outcome.grounding,
            ),
            answer.reservation_ids,
        )
        budget.spent(spent)
    except DATABASE_ERRORS as error:
        log.error("answer.not_recorded", error=f"{type(error).__name__}: {error}")
    metrics.ANSWERS.labels(outcome.finish_reason, outcome.grounding).inc()
    model = answer.model or "offline"
    metrics.LLM_TOKENS.labels(model, "prompt").inc(outcome.prompt_tokens)
    metrics.LLM_TOKENS.labels(model, "completion").inc(outcome.completion_tokens)
    metrics.LLM_COST_USD.labels(model).inc(to_usd(micro))
    if outcome.first_token_ms:
        metrics.FIRST_TOKEN_SECONDS.labels(model).observe(outcome.first_token_ms / 1000)
    log.info(
        "answer.finished",
        finish_reason=outcome.finish_reason,
        model=answer.model,
        chunks=len(outcome.hits),
        citations=len(outcome.citations),
        grounding=outcome.grounding,
        ms=total_ms,
    )
