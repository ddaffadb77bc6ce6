"""What an answer leaves behind once it ends, however it ends: outcome → cost → rows.

The answer message and its ledger row are written for completed, failed and cancelled
answers alike; a call cut short before the provider reported its usage is estimated from
the characters sent and received.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from chatbot_server.answers import chat_store
from chatbot_server.answers.answer_leases import AnswerLeases
from chatbot_server.answers.answer_writing import WrittenAnswer, answer_lost_error, write_answer
from chatbot_server.answers.chat_store import AskedQuestion
from chatbot_server.answers.prompting import CHARS_PER_TOKEN
from chatbot_server.governance.budget import Budget, CallReservation
from chatbot_server.governance.experiments import Assignment
from chatbot_server.money.ledger_store import AnswerLogEntry, RequestFacts
from chatbot_server.money.pricing import FREE, call_cost_micro_usd, to_usd
from chatbot_server.platform import metrics
from chatbot_server.platform.database import DATABASE_ERRORS
from chatbot_server.platform.errors import ServiceError
from chatbot_server.retrieval.hybrid_search import Hit

log = structlog.get_logger(__name__)

_MESSAGE_STATUS = {"error": "failed", "cancelled": "cancelled"}


@dataclass(frozen=True)
class AnswerRecord:
    """The answer's fixed facts: the request they came from, and where it is stored."""

    request: RequestFacts
    # Stored before the answer message refers to it.
    asked: AskedQuestion
    message_id: UUID
    embedding_model: str
    assignment: Assignment | None
    started: float


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


class AnswerRecorder:
    """Writes one answer's message and ledger row exactly once, however the answer ends
    (complete, failed, or cut because the caller left or the server is stopping), settling
    its budget reservation. Once begun, the writing goes on even if the call is cancelled,
    and the answerer's `recordings` let a stopping server wait for it. The answer is leased
    until then, so that another server records it should this one die."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        budget: Budget,
        reservation: CallReservation,
        recordings: set[asyncio.Future[None]],
        leases: AnswerLeases,
        answer: AnswerRecord,
    ) -> None:
        self._pool = pool
        self._budget = budget
        self._reservation = reservation
        self._recordings = recordings
        self._leases = leases
        self._answer = answer
        self._question_stored: asyncio.Future[None] | None = None
        self.outcome = AnswerOutcome()
        # The model the answer is made with; empty without one.
        self.model = ""
        self.recorded = False
        self.lease = leases.take(answer.message_id, self.if_lost)

    def store_question(self) -> None:
        """Stores the question (and a new conversation) beside whatever comes next."""
        if self._question_stored is None:
            self._question_stored = asyncio.ensure_future(
                chat_store.store_question(self._pool, self._answer.asked)
            )

    async def record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        self.store_question()
        # Begun before any await: a second cancel (the caller left, then the server stops)
        # must not stop the answer from being written.
        recording = asyncio.ensure_future(self._write())
        self._recordings.add(recording)
        recording.add_done_callback(self._recordings.discard)
        await asyncio.shield(recording)

    def if_lost(self) -> WrittenAnswer:
        """What another server writes should this one die now: the text so far, failed."""
        outcome = dataclasses.replace(
            self.outcome,
            text=list(self.outcome.text),
            finish_reason="error",
            error=answer_lost_error(),
            grounding="unspecified",
        )
        return self._written(outcome, list(self._reservation.ids))

    def _written(self, outcome: AnswerOutcome, reservation_ids: list[UUID]) -> WrittenAnswer:
        answer, model = self._answer, self.model
        estimate_unreported_usage(outcome)
        micro, source = cost_of(model, outcome)
        total_ms = elapsed_ms(answer.started)
        assignment = answer.assignment
        return WrittenAnswer(
            asked=answer.asked,
            message_id=answer.message_id,
            text="".join(outcome.text),
            citations=outcome.citations,
            status=_MESSAGE_STATUS.get(outcome.finish_reason, "complete"),
            model=model,
            entry=AnswerLogEntry(
                answer.request,
                conversation_id=answer.asked.conversation_id,
                message_id=answer.message_id,
                question=answer.asked.text,
                llm_model=model,
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
            reservation_ids=reservation_ids,
        )

    async def _write(self) -> None:
        """The answer message, then its ledger row, which settles the reservation to the
        call's real cost and ends the lease; logs `answer.finished`."""
        outcome = self.outcome
        written = self._written(outcome, await self._reservation.finished())
        assert self._question_stored is not None
        try:
            lease = await self.lease
            await self._question_stored
            spent = await write_answer(self._pool, written, lease)
            if lease is not None and spent is None:
                log.warning("answer.recorded_as_lost", answer_id=str(self._answer.message_id))
            self._budget.spent(spent)
        except DATABASE_ERRORS as error:
            log.error("answer.not_recorded", error=f"{type(error).__name__}: {error}")
        finally:
            self._leases.release(self._answer.message_id)
        _count(self.model, outcome, written.entry.cost_micro_usd)
        log.info(
            "answer.finished",
            finish_reason=outcome.finish_reason,
            model=self.model,
            chunks=len(outcome.hits),
            citations=len(outcome.citations),
            grounding=outcome.grounding,
            ms=written.entry.total_ms,
        )


def _count(model: str, outcome: AnswerOutcome, micro_usd: int) -> None:
    metrics.ANSWERS.labels(outcome.finish_reason, outcome.grounding).inc()
    name = model or "offline"
    metrics.LLM_TOKENS.labels(name, "prompt").inc(outcome.prompt_tokens)
    metrics.LLM_TOKENS.labels(name, "completion").inc(outcome.completion_tokens)
    metrics.LLM_COST_USD.labels(name).inc(to_usd(micro_usd))
    if outcome.first_token_ms:
        metrics.FIRST_TOKEN_SECONDS.labels(name).observe(outcome.first_token_ms / 1000)
