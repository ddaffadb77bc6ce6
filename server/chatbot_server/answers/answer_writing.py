"""What an ended answer writes (its message and its ledger row), kept as one record so that
the server that made the answer and a server recording it as lost write the same thing."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import grpc

from chatbot_server.answers import answer_lease_store, chat_store
from chatbot_server.answers.answer_lease_store import HeldLease
from chatbot_server.answers.chat_store import AskedQuestion
from chatbot_server.money import budget_store
from chatbot_server.money.ledger_store import AnswerLogEntry, RequestFacts, record_call_in
from chatbot_server.platform.errors import ServiceError

ANSWER_LOST = "ANSWER_LOST"


def answer_lost_error(answer_id: str | None = None) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        "the server making this answer stopped before it was complete; the text streamed "
        "so far is kept in the conversation as a failed message: ask the question again",
        reason=ANSWER_LOST,
        metadata={"answer_id": answer_id} if answer_id else None,
    )


@dataclass(frozen=True)
class WrittenAnswer:
    asked: AskedQuestion
    message_id: UUID
    text: str
    citations: list[dict[str, Any]]
    # The message's status: complete, failed or cancelled.
    status: str
    model: str
    entry: AnswerLogEntry
    reservation_ids: list[UUID]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, raw: str) -> WrittenAnswer:
        values = json.loads(raw)
        entry = values["entry"]
        request = entry.pop("request")
        return cls(
            asked=AskedQuestion(**_with_uuids(values["asked"])),
            message_id=UUID(values["message_id"]),
            text=values["text"],
            citations=values["citations"],
            status=values["status"],
            model=values["model"],
            entry=AnswerLogEntry(RequestFacts(**_with_uuids(request)), **_with_uuids(entry)),
            reservation_ids=[UUID(value) for value in values["reservation_ids"]],
        )


# Ids that are text, not UUIDs.
_TEXT_IDS = ("request_id", "session_id")


def _with_uuids(values: dict[str, Any]) -> dict[str, Any]:
    """The JSON object's `*_id` strings as UUIDs."""
    return {
        name: UUID(value) if name.endswith("_id") and name not in _TEXT_IDS and value else value
        for name, value in values.items()
    }


async def write_answer(
    pool: asyncpg.Pool, answer: WrittenAnswer, lease: HeldLease | None
) -> int | None:
    """The answer message and its ledger row, which settles the reservations, in one
    transaction with the end of the lease: whoever holds the lease writes both, or neither.
    The day's global spend, or None when `lease` was no longer held (someone else wrote it)."""
    async with pool.acquire() as conn, conn.transaction():
        if lease is not None and not await answer_lease_store.end(conn, lease):
            await budget_store.release(conn, answer.reservation_ids)
            return None
        await chat_store.insert_message(
            conn, answer.asked.conversation_id, "assistant", answer.text,
            message_id=answer.message_id, citations=answer.citations, status=answer.status,
            model=answer.model, request_id=answer.entry.request.request_id,
        )  # fmt: skip
        # Last: the day's totals are one row every answer updates, locked until the commit.
        return await record_call_in(conn, answer.entry, answer.reservation_ids)
