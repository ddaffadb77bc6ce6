"""Answering a question: retrieve, prompt, stream the model's words, cite, record.

It yields plain events (`answer_events`) in the order of the StreamAnswer contract.
Whatever happens (completion, a model failure, the caller cancelling), its recorder writes
the answer message and its ledger row, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import grpc
import structlog

from chatbot_server.answers import chat_store
from chatbot_server.answers.answer_events import (
    AnswerEnded,
    AnswerEvent,
    AnswerStarted,
    CitationsMade,
    RetrievalFound,
    StillWorking,
    TextAdded,
    UsageMeasured,
)
from chatbot_server.answers.answer_leases import AnswerLeases
from chatbot_server.answers.answer_recording import (
    AnswerOutcome,
    AnswerRecord,
    AnswerRecorder,
    cost_of,
    elapsed_ms,
)
from chatbot_server.answers.chat_store import AskedQuestion
from chatbot_server.answers.citations import CitationRenumberer, stored_citation
from chatbot_server.answers.grounding import (
    NOT_FOUND_TEXT,
    OFFLINE_NOTICE,
    QUOTES_INTRO,
    NotFoundReply,
    best_sentences,
    documents_answer,
    localized,
    quoted_sources,
)
from chatbot_server.answers.llm import (
    Accepted,
    Finished,
    LlmClient,
    LlmError,
    ReportedUsage,
    TextDelta,
)
from chatbot_server.answers.model_errors import model_failure
from chatbot_server.answers.prompting import SYSTEM_PROMPT, build_messages
from chatbot_server.config import AnswerSettings, RetrievalSettings
from chatbot_server.governance.api_keys import ApiKeyRecord
from chatbot_server.governance.budget import Budget, CallReservation
from chatbot_server.governance.experiments import ActiveExperiment, Assignment
from chatbot_server.money.ledger_store import RequestFacts
from chatbot_server.money.pricing import worst_case_micro_usd
from chatbot_server.platform.errors import ServiceError, embedding_unavailable
from chatbot_server.platform.tracing import tracer
from chatbot_server.retrieval.embeddings import Embedder, EmbeddingError
from chatbot_server.retrieval.hybrid_search import (
    Hit,
    Retrieval,
    SearchFilter,
    question_language,
    retrieve,
)

log = structlog.get_logger(__name__)
# A numbered source in the prompt: a chunk of about CHUNK_SIZE_CHARS and its heading. Only
# an estimate: a prompt that turns out larger is topped up before the model is called.
SOURCE_BYTES_ESTIMATE = 1400
HISTORY_MESSAGES = 10
# Finish reasons a model may report; any other ends the answer as "stop".
_MODEL_FINISH_REASONS = ("stop", "length", "content_filter")


@dataclass(frozen=True)
class Question:
    text: str
    # The conversation to continue; None starts one with `session_id` and `title`.
    conversation_id: UUID | None
    session_id: str
    title: str
    # Who asks, carried unchanged to the answer's ledger row.
    request: RequestFacts
    language: str
    where: SearchFilter
    top_k: int
    include_retrieval: bool
    deadline_seconds: float | None
    # The caller's API key: its id goes on the ledger, its budget is reserved against.
    api_key: ApiKeyRecord | None = None
    # Set when a budget is spent and BUDGET_EXHAUSTED_ACTION=offline.
    budget_exhausted: ServiceError | None = None


@dataclass(frozen=True)
class _Plan:
    """How this answer is made: the defaults, an experiment variant's settings, or offline."""

    model: str
    top_k: int
    temperature: float
    system_prompt: str
    assignment: Assignment | None
    offline_warning: str | None
    # The question's language (given or detected): retrieval's and the notices'.
    language: str


class Answerer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        llm: LlmClient | None,
        settings: AnswerSettings,
        retrieval: RetrievalSettings,
        budget: Budget,
        experiments: ActiveExperiment,
        leases: AnswerLeases,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._llm = llm
        self._settings = settings
        self._retrieval = retrieval
        self._budget = budget
        self._experiments = experiments
        self._leases = leases
        self._recordings: set[asyncio.Future[None]] = set()
        self._in_flight = 0
        self._none_in_flight = asyncio.Event()
        self._none_in_flight.set()

    async def answer(self, question: Question) -> AsyncIterator[AnswerEvent]:
        """The answer's events; counted in flight until its recording has begun."""
        self._in_flight += 1
        self._none_in_flight.clear()
        try:
            async with contextlib.aclosing(self._answer(question)) as events:
                async for event in events:
                    yield event
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._none_in_flight.set()

    async def _answer(self, question: Question) -> AsyncGenerator[AnswerEvent, None]:
        started = time.perf_counter()
        conversation_id = question.conversation_id or uuid.uuid4()
        question_id, message_id = uuid.uuid4(), uuid.uuid4()
        plan = await self._plan(question, conversation_id)
        reservation = CallReservation(self._budget, question.api_key)
        recorder = AnswerRecorder(
            self._pool,
            self._budget,
            reservation,
            self._recordings,
            self._leases,
            AnswerRecord(
                request=question.request,
                asked=AskedQuestion(
                    conversation_id=conversation_id,
                    message_id=question_id,
                    text=question.text,
                    request_id=question.request.request_id,
                    starts_conversation=question.conversation_id is None,
                    owner=question.request.identity,
                    session_id=question.session_id,
                    title=question.title,
                ),
                message_id=message_id,
                embedding_model=self._embedder.model_name,
                assignment=plan.assignment,
                started=started,
            ),
        )
        recorder.model = plan.model
        outcome = recorder.outcome
        try:
            yield AnswerStarted(
                conversation_id=conversation_id,
                user_message_id=question_id,
                assistant_message_id=message_id,
                request_id=question.request.request_id,
                model=plan.model,
                assignment=plan.assignment,
                leased=recorder.lease,
            )
            history = (
                await self._history(conversation_id, question_id)
                if question.conversation_id
                else []
            )
            if plan.model:
                reservation.start(self._estimated_worst_case(question, plan, history))
            retrieval = await self._retrieve(question, plan, outcome, started)
            outcome.hits = retrieval.hits
            # The question is stored while the model thinks: nothing on the way to the first
            # token waits for it (and retrieval, on two cores, ran faster without it).
            recorder.store_question()
            if question.include_retrieval:
                yield RetrievalFound(outcome.hits)
            warnings = []
            if not outcome.hits:
                warnings.append("no document matched the question")
            messages: list[dict[str, str]] = []
            if plan.model and outcome.hits:
                messages = build_messages(
                    question.text, outcome.hits, history,
                    self._settings.history_token_budget, plan.system_prompt,
                )  # fmt: skip
                prompt_bytes = sum(len(m["content"].encode()) for m in messages)
                assert self._llm is not None
                worst_case = worst_case_micro_usd(
                    plan.model, prompt_bytes, self._llm.max_output_tokens
                )
                try:
                    await reservation.cover(worst_case)
                except ServiceError as refusal:
                    if self._budget.exhausted_action != "offline":
                        raise
                    recorder.model, messages = "", []
                    warnings.append(_offline_for_budget(refusal))
            if plan.offline_warning:
                warnings.append(plan.offline_warning)
            events = (
                self._generate(question, recorder.model, messages, plan, outcome)
                if messages
                else self._offline(question, outcome, retrieval)
            )
            async for event in self._with_heartbeats(events, started):
                if outcome.first_token_ms == 0 and isinstance(event, TextAdded):
                    outcome.first_token_ms = elapsed_ms(started)
                yield event
            yield CitationsMade(outcome.citations)
            yield _usage(recorder.model, outcome, started)
            await recorder.record()
            yield AnswerEnded(outcome.finish_reason, outcome.grounding, warnings)
        except asyncio.CancelledError:
            # An answer recorded already was complete; otherwise the caller did not get it
            # all, whatever the generator had reached (offline answers are made at once).
            if not recorder.recorded:
                outcome.grounding = "unspecified"
                outcome.finish_reason = "cancelled"
            if _deadline_passed(question, started):
                outcome.finish_reason = "error"
                outcome.error = ServiceError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "the caller's deadline passed before the answer was complete",
                    reason="DEADLINE_EXCEEDED",
                )
            raise
        except ServiceError as error:
            outcome.finish_reason, outcome.error = "error", error
            await recorder.record()
            yield AnswerEnded("error", error=error)
            raise
        finally:
            await recorder.record()

    async def drain(self) -> None:
        """Waits until every answer has ended and been recorded: the server calls this after
        it stopped its calls and before it closes the database pool."""
        await self._none_in_flight.wait()
        while self._recordings:
            await asyncio.gather(*self._recordings, return_exceptions=True)

    async def _plan(self, question: Question, conversation_id: UUID) -> _Plan:
        assignment = await self._experiments.assign(conversation_id)
        variant = assignment.variant if assignment else None
        language = await question_language(self._pool, question.text, question.language)
        model = self._settings.model if language == "en" else self._settings.multilingual_model
        if variant is not None and variant.llm_model:
            model = variant.llm_model
        offline_warning = None
        if self._llm is None:
            model = ""
            offline_warning = localized(OFFLINE_NOTICE, language)
        elif question.budget_exhausted is not None:
            model = ""
            offline_warning = _offline_for_budget(question.budget_exhausted)
        return _Plan(
            model=model,
            top_k=question.top_k or (variant.top_k if variant else 0) or self._retrieval.top_k,
            temperature=(
                variant.temperature
                if variant is not None and variant.temperature is not None
                else self._settings.temperature
            ),
            system_prompt=(variant.system_prompt if variant else "") or SYSTEM_PROMPT,
            assignment=assignment,
            offline_warning=offline_warning,
            language=language,
        )

    def _estimated_worst_case(
        self, question: Question, plan: _Plan, history: list[tuple[str, str]]
    ) -> int:
        """What the call will likely reserve, before retrieval has found its sources."""
        assert self._llm is not None
        known = plan.system_prompt + question.text + "".join(text for _, text in history)
        prompt_bytes = len(known.encode()) + plan.top_k * SOURCE_BYTES_ESTIMATE
        return worst_case_micro_usd(plan.model, prompt_bytes, self._llm.max_output_tokens)

    async def _history(self, conversation_id: UUID, question_id: UUID) -> list[tuple[str, str]]:
        """Earlier messages, without the question being stored beside this read."""
        messages = await chat_store.list_messages(self._pool, conversation_id)
        earlier = [m for m in messages if m.id != question_id]
        return [(m.role, m.content) for m in earlier[-HISTORY_MESSAGES:] if m.content]

    async def _retrieve(
        self, question: Question, plan: _Plan, outcome: AnswerOutcome, started: float
    ) -> Retrieval:
        try:
            retrieval = await retrieve(
                self._pool, self._embedder, question.text, question.where,
                plan.top_k, self._retrieval.similarity_threshold, language=plan.language,
            )  # fmt: skip
        except EmbeddingError as error:
            raise embedding_unavailable("the question", error) from error
        outcome.retrieval_ms = elapsed_ms(started)
        return retrieval

    async def _offline(
        self, question: Question, outcome: AnswerOutcome, retrieval: Retrieval
    ) -> AsyncGenerator[AnswerEvent, None]:
        """An extractive answer: the most relevant sentences of the best passages, each
        cited; or, when the passages do not hold an answer, a plain not found. Both in the
        question's language."""
        answered = documents_answer(retrieval.evidence)
        sources = quoted_sources(outcome.hits) if answered else []
        if sources:
            quotes = [
                f"{best_sentences(hit.candidate.text, question.text)} [{number}]"
                for number, hit in enumerate(sources, start=1)
            ]
            text = localized(QUOTES_INTRO, retrieval.language) + "\n\n" + "\n\n".join(quotes)
            outcome.citations = [_citation(n, hit) for n, hit in enumerate(sources, start=1)]
            outcome.grounding = "answered"
        else:
            text = localized(NOT_FOUND_TEXT, retrieval.language)
            outcome.grounding = "not_found"
        outcome.text.append(text)
        outcome.finish_reason = "stop"
        yield TextAdded(text)

    async def _generate(
        self,
        question: Question,
        model: str,
        messages: list[dict[str, str]],
        plan: _Plan,
        outcome: AnswerOutcome,
    ) -> AsyncGenerator[AnswerEvent, None]:
        assert self._llm is not None
        outcome.prompt_chars = sum(len(message["content"]) for message in messages)
        renumberer = CitationRenumberer(len(outcome.hits))
        reply = NotFoundReply()
        # Not made current: a generator may be closed from another context than it ran in.
        span = tracer.start_span("llm.stream", attributes={"llm.model": model})
        try:
            async for event in self._llm.stream(
                model, messages, temperature=plan.temperature,
                deadline_seconds=question.deadline_seconds,
            ):  # fmt: skip
                if isinstance(event, Accepted):
                    outcome.provider_accepted = True
                    continue
                if isinstance(event, TextDelta):
                    text = renumberer.feed(reply.feed(event.text))
                elif isinstance(event, ReportedUsage):
                    outcome.prompt_tokens = event.prompt_tokens
                    outcome.completion_tokens = event.completion_tokens
                    outcome.provider_cost_usd = event.cost_usd
                    continue
                elif isinstance(event, Finished):
                    known = event.reason in _MODEL_FINISH_REASONS
                    outcome.finish_reason = event.reason if known else "stop"
                    continue
                if text:
                    outcome.text.append(text)
                    yield TextAdded(text)
        except LlmError as error:
            raise model_failure(error) from error
        finally:
            span.set_attribute("llm.completion_tokens", outcome.completion_tokens)
            span.end()
            rest = renumberer.feed(reply.flush()) + renumberer.flush()
            outcome.citations = [
                _citation(number, outcome.hits[source - 1])
                for number, source in enumerate(renumberer.cited_sources, start=1)
            ]
        if reply.not_found:
            rest = localized(NOT_FOUND_TEXT, plan.language)
            outcome.citations = []
        outcome.grounding = "not_found" if reply.not_found else "answered"
        if rest:
            outcome.text.append(rest)
            yield TextAdded(rest)
        if outcome.finish_reason == "cancelled":
            outcome.finish_reason = "stop"

    async def _with_heartbeats(
        self, events: AsyncGenerator[AnswerEvent, None], started: float
    ) -> AsyncIterator[AnswerEvent]:
        """Passes events on, adding a heartbeat whenever the source is quiet for a while."""
        pending: asyncio.Future[AnswerEvent] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({pending}, timeout=self._settings.heartbeat_seconds)
                if not done:
                    yield StillWorking(elapsed_ms(started))
                    continue
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield event
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            await events.aclose()


def _usage(model: str, outcome: AnswerOutcome, started: float) -> UsageMeasured:
    micro, source = cost_of(model, outcome)
    return UsageMeasured(
        model=model,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cost_micro_usd=micro,
        cost_source=source,
        retrieval_ms=outcome.retrieval_ms,
        first_token_ms=outcome.first_token_ms,
        total_ms=elapsed_ms(started),
    )


def _citation(number: int, hit: Hit) -> dict[str, Any]:
    found = hit.candidate
    return stored_citation(
        number,
        document_id=found.document_id,
        document_title=found.document_title,
        chunk_id=found.chunk_id,
        page_number=found.page_number,
        section_title=found.section_title,
        chunk_text=found.text,
        relevance_score=hit.relevance,
    )


def _offline_for_budget(refusal: ServiceError) -> str:
    return f"offline: {refusal.message}; the answer quotes the retrieved passages"


def _deadline_passed(question: Question, started: float) -> bool:
    """Whether a cancelled call was cut by the caller's deadline rather than by the caller."""
    if question.deadline_seconds is None:
        return False
    # grpc cancels the handler a moment after the deadline; never before it.
    return time.perf_counter() - started >= question.deadline_seconds - 0.05
