"""Conversations, messages and feedback in PostgreSQL: the named queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

CONVERSATION_COLUMNS = """
    c.id, c.owner, c.session_id, c.title, c.created_at, c.updated_at,
    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
"""
MESSAGE_COLUMNS = "id, conversation_id, role, content, citations, status, model, created_at"


@dataclass(frozen=True)
class ConversationRecord:
    id: UUID
    owner: str
    session_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int


@dataclass(frozen=True)
class MessageRecord:
    id: UUID
    conversation_id: UUID
    role: str
    content: str
    citations: list[dict[str, Any]]
    status: str
    model: str
    created_at: datetime


def _message(row: asyncpg.Record) -> MessageRecord:
    values = dict(row)
    values["citations"] = json.loads(values["citations"])
    return MessageRecord(**values)


async def create_conversation(
    pool: asyncpg.Pool,
    owner: str,
    session_id: str,
    title: str,
    conversation_id: UUID | None = None,
    *,
    seeded: bool = False,
) -> ConversationRecord:
    row = await pool.fetchrow(
        f"""
        WITH c AS (
            INSERT INTO conversations (id, owner, session_id, title, seeded)
            VALUES (coalesce($4, gen_random_uuid()), $1, $2, $3, $5)
            RETURNING *
        )
        SELECT {CONVERSATION_COLUMNS} FROM c
        """,
        owner,
        session_id,
        title,
        conversation_id,
        seeded,
    )
    return ConversationRecord(**dict(row))


async def get_conversation(pool: asyncpg.Pool, conversation_id: UUID) -> ConversationRecord | None:
    row = await pool.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1", conversation_id
    )
    return ConversationRecord(**dict(row)) if row is not None else None


async def list_conversations(
    pool: asyncpg.Pool,
    owner: str,
    session_id: str,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[ConversationRecord]:
    rows = await pool.fetch(
        f"""
        SELECT {CONVERSATION_COLUMNS} FROM conversations c
        WHERE c.owner = $1 AND c.session_id = $2
          AND ($3::timestamptz IS NULL OR (c.created_at, c.id) < ($3, $4::uuid))
        ORDER BY c.created_at DESC, c.id DESC
        LIMIT $5
        """,
        owner, session_id, *(after or (None, None)), limit,
    )  # fmt: skip
    return [ConversationRecord(**dict(row)) for row in rows]


async def delete_conversation(pool: asyncpg.Pool, conversation_id: UUID) -> None:
    await pool.execute("DELETE FROM conversations WHERE id = $1", conversation_id)


async def set_title_if_empty(pool: asyncpg.Pool, conversation_id: UUID, title: str) -> None:
    await pool.execute(
        "UPDATE conversations SET title = $2 WHERE id = $1 AND title = ''", conversation_id, title
    )


async def insert_message(
    db: asyncpg.Pool | asyncpg.Connection,
    conversation_id: UUID,
    role: str,
    content: str,
    *,
    message_id: UUID | None = None,
    citations: list[dict[str, Any]] | None = None,
    status: str = "complete",
    model: str = "",
    request_id: str = "",
) -> None:
    """Adds a message, on the pool or within a caller's transaction."""
    # One statement: a round trip saved on every question's way to its first token.
    await db.execute(
        """
        WITH touched AS (UPDATE conversations SET updated_at = now() WHERE id = $2)
        INSERT INTO messages (id, conversation_id, role, content, citations, status, model,
                              request_id)
        VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5::jsonb, $6, $7, $8)
        """,
        message_id, conversation_id, role, content, json.dumps(citations or []),
        status, model, request_id,
    )  # fmt: skip


@dataclass(frozen=True)
class AskedQuestion:
    """A question as stored, with the conversation it starts if it starts one."""

    conversation_id: UUID
    message_id: UUID
    text: str
    request_id: str
    starts_conversation: bool
    owner: str
    session_id: str
    title: str


async def store_question(pool: asyncpg.Pool, question: AskedQuestion) -> None:
    """Stores the question, and its conversation when it starts one; storing it again
    changes nothing (a lost answer's question is stored by whichever server records it)."""
    await pool.execute(
        """
        WITH started AS (
            INSERT INTO conversations (id, owner, session_id, title)
            SELECT $1, $5, $6, $7 WHERE $4
            ON CONFLICT (id) DO NOTHING
        ), touched AS (UPDATE conversations SET updated_at = now() WHERE id = $1)
        INSERT INTO messages (id, conversation_id, role, content, request_id)
        VALUES ($2, $1, 'user', $3, $8)
        ON CONFLICT (id) DO NOTHING
        """,
        question.conversation_id, question.message_id, question.text,
        question.starts_conversation, question.owner, question.session_id, question.title,
        question.request_id,
    )  # fmt: skip


async def list_messages(pool: asyncpg.Pool, conversation_id: UUID) -> list[MessageRecord]:
    rows = await pool.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 "
        "ORDER BY created_at, id",
        conversation_id,
    )
    return [_message(row) for row in rows]


async def get_message(pool: asyncpg.Pool, message_id: UUID) -> MessageRecord | None:
    row = await pool.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id)
    return _message(row) if row is not None else None


@dataclass(frozen=True)
class FeedbackRecord:
    id: UUID
    message_id: UUID
    rating: str
    comment: str
    created_at: datetime
    updated_at: datetime


async def upsert_feedback(
    pool: asyncpg.Pool, message_id: UUID, owner: str, rating: str, comment: str
) -> FeedbackRecord:
    row = await pool.fetchrow(
        """
        INSERT INTO feedback (message_id, owner, rating, comment) VALUES ($1, $2, $3, $4)
        ON CONFLICT (message_id, owner)
        DO UPDATE SET rating = excluded.rating, comment = excluded.comment, updated_at = now()
        RETURNING id, message_id, rating, comment, created_at, updated_at
        """,
        message_id, owner, rating, comment,
    )  # fmt: skip
    return FeedbackRecord(**dict(row))


@dataclass(frozen=True)
class FeedbackCounts:
    positive: int
    negative: int
    answers: int


async def feedback_counts(pool: asyncpg.Pool, since: datetime) -> FeedbackCounts:
    """Ratings of the answers given since `since`, and how many answers there were."""
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM feedback f JOIN messages m ON m.id = f.message_id
                WHERE m.created_at >= $1 AND f.rating = 'positive') AS positive,
               (SELECT count(*) FROM feedback f JOIN messages m ON m.id = f.message_id
                WHERE m.created_at >= $1 AND f.rating = 'negative') AS negative,
               (SELECT count(*) FROM messages
                WHERE role = 'assistant' AND created_at >= $1) AS answers
        """,
        since,
    )
    return FeedbackCounts(int(row["positive"]), int(row["negative"]), int(row["answers"]))


async def recent_comments(pool: asyncpg.Pool, since: datetime, limit: int) -> list[FeedbackRecord]:
    rows = await pool.fetch(
        """
        SELECT id, message_id, rating, comment, created_at, updated_at FROM feedback
        WHERE comment <> '' AND updated_at >= $1
        ORDER BY updated_at DESC, id DESC LIMIT $2
        """,
        since,
        limit,
    )
    return [FeedbackRecord(**dict(row)) for row in rows]
