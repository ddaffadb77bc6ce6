"""The daily budget's reservations and totals in PostgreSQL: the named queries.

The totals themselves are written by the ledger (`ledger_store.record_call`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class ScopeTotals:
    scope: str
    spent_micro_usd: int
    reserved_micro_usd: int
    budget_micro_usd: int


async def reserve(
    pool: asyncpg.Pool,
    reservation_id: UUID,
    budgets: dict[str, int],
    amount_micro_usd: int,
    ttl: timedelta,
) -> tuple[bool, list[ScopeTotals]]:
    """Reserves the amount against every scope's budget, or none; whether it was granted,
    and each scope's totals before this reservation."""
    scopes = sorted(budgets)
    rows = await pool.fetch(
        "SELECT * FROM budget_reserve($1, $2::text[], $3::bigint[], $4, $5)",
        reservation_id, scopes, [budgets[s] for s in scopes], amount_micro_usd, ttl,
    )  # fmt: skip
    granted = all(row["granted"] for row in rows)
    return granted, [
        ScopeTotals(row["scope"], row["spent"], row["reserved"], row["budget"]) for row in rows
    ]


async def release(conn: asyncpg.Connection, reservation_ids: Sequence[UUID]) -> None:
    """Ends the reservations: their call's cost is in the ledger, or it did not go ahead."""
    if reservation_ids:
        await conn.execute(
            "DELETE FROM budget_reservations WHERE id = ANY($1::uuid[])", list(reservation_ids)
        )


async def totals(pool: asyncpg.Pool, day: date, scope: str) -> tuple[int, int]:
    """Spent and currently reserved micro-USD of a scope on a day."""
    row = await pool.fetchrow(
        """
        SELECT coalesce((SELECT spent_micro_usd FROM budget_days
                         WHERE day = $1 AND scope = $2), 0)::bigint AS spent,
               coalesce((SELECT sum(micro_usd) FROM budget_reservations
                         WHERE day = $1 AND $2 = ANY (scopes)
                           AND expires_at > clock_timestamp()), 0)::bigint AS reserved
        """,
        day,
        scope,
    )
    return int(row["spent"]), int(row["reserved"])


async def claim_alert(pool: asyncpg.Pool, day: date, scope: str) -> bool:
    """True for exactly one caller per day and scope, on any replica: the one to alert."""
    claimed = await pool.fetchval(
        """
        UPDATE budget_days SET alert_sent_at = now()
        WHERE day = $1 AND scope = $2 AND alert_sent_at IS NULL
        RETURNING true
        """,
        day,
        scope,
    )
    return bool(claimed)
