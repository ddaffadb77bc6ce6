"""What answering a question produces, in the order it happens. Plain records: the chat
servicer turns each into the StreamAnswer contract's message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from chatbot_server.governance.experiments import Assignment
from chatbot_server.platform.errors import ServiceError
from chatbot_server.retrieval.hybrid_search import Hit


@dataclass(frozen=True)
class AnswerStarted:
    conversation_id: UUID
    user_message_id: UUID
    assistant_message_id: UUID
    request_id: str
    # Empty when the answer is made without a model.
    model: str
    assignment: Assignment | None
    # Done once the answer is leased: from then on, another server records it should this
    # one die.
    leased: asyncio.Future[Any]


@dataclass(frozen=True)
class RetrievalFound:
    hits: list[Hit]


@dataclass(frozen=True)
class TextAdded:
    text: str


@dataclass(frozen=True)
class CitationsMade:
    citations: list[dict[str, Any]]


@dataclass(frozen=True)
class UsageMeasured:
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int
    cost_source: str
    retrieval_ms: int
    first_token_ms: int
    total_ms: int


@dataclass(frozen=True)
class StillWorking:
    """Nothing new for a while; the answer goes on."""

    elapsed_ms: int


@dataclass(frozen=True)
class AnswerEnded:
    finish_reason: str
    grounding: str = "unspecified"
    warnings: list[str] = field(default_factory=list)
    error: ServiceError | None = None


AnswerEvent = (
    AnswerStarted
    | RetrievalFound
    | TextAdded
    | CitationsMade
    | UsageMeasured
    | StillWorking
    | AnswerEnded
)
