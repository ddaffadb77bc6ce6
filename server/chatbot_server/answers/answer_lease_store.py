"""Answers' leases in PostgreSQL (`answer_leases`): the named queries. A lease's row ends in
the transaction that writes its answer (`answer_writing.write_answer`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class HeldLease:
    """An answer's lease as held by one server."""

    answer_id: UUID
    holder: str


async def take(
    pool: asyncpg.Pool, answer_id: UUID, holder: str, ttl: timedelta, if_lost: str
) -> None:
    await pool.execute(
        """
        INSERT INTO answer_leases (answer_id, holder, expires_at, if_lost)
        VALUES ($1, $2, clock_timestamp() + $3, $4::jsonb)
        """,
        answer_id, holder, ttl, if_lost,
    )  # fmt: skip


async def renew(
    pool: asyncpg.Pool, holder: str, ttl: timedelta, answers: list[tuple[UUID, str]]
) -> None:
    """Extends the holder's leases of these answers, with what each would write if lost."""
    await pool.execute(
        """
        UPDATE answer_leases AS l
        SET expires_at = clock_timestamp() + $2, if_lost = a.if_lost::jsonb
        FROM unnest($3::uuid[], $4::text[]) AS a (answer_id, if_lost)
        WHERE l.answer_id = a.answer_id AND l.holder = $1
        """,
        holder, ttl, [answer_id for answer_id, _ in answers], [raw for _, raw in answers],
    )  # fmt: skip


async def claim_expired(
    pool: asyncpg.Pool, holder: str, ttl: timedelta, limit: int
) -> list[tuple[UUID, str]]:
    """Takes over leases that ran out (their holder died); each answer, and what to write."""
    rows = await pool.fetch(
        """
        UPDATE answer_leases SET holder = $1, expires_at = clock_timestamp() + $2
        WHERE answer_id IN (
            SELECT answer_id FROM answer_leases WHERE expires_at < clock_timestamp()
            ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED
        )
        RETURNING answer_id, if_lost::text
        """,
        holder, ttl, limit,
    )  # fmt: skip
    return [(row["answer_id"], row["if_lost"]) for row in rows]


async def end(conn: asyncpg.Connection, lease: HeldLease) -> bool:
    """Ends the lease; whether its holder still had it (if not, another server took it over
    and recorded the answer as lost)."""
    ended: bool | None = await conn.fetchval(
        "DELETE FROM answer_leases WHERE answer_id = $1 AND holder = $2 RETURNING true",
        lease.answer_id,
        lease.holder,
    )
    return bool(ended)
