"""The `audit_events` table: append and list. The app role can do nothing else with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

OUTCOMES = ("ok", "refused", "failed")


@dataclass(frozen=True)
class AuditEntry:
    """An action as it is written: who, what, on what, and how it ended."""

    actor: str
    actor_name: str
    action: str
    target: str
    request_id: str
    outcome: str
    status_code: str
    request_json: str
    error_message: str


@dataclass(frozen=True)
class AuditRecord:
    id: UUID
    created_at: datetime
    entry: AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    outcome: str = ""
    start: datetime | None = None
    end: datetime | None = None


async def append(pool: asyncpg.Pool, entry: AuditEntry) -> None:
    await pool.execute(
        """
        INSERT INTO audit_events (actor, actor_name, action, target, request_id, outcome,
                                  status_code, request_json, error_message)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        entry.actor, entry.actor_name, entry.action, entry.target, entry.request_id,
        entry.outcome, entry.status_code, entry.request_json, entry.error_message,
    )  # fmt: skip


async def list_events(
    pool: asyncpg.Pool, where: AuditFilter, limit: int, after: tuple[datetime, UUID] | None
) -> list[AuditRecord]:
    """Newest first, after the keyset `after` when given."""
    rows = await pool.fetch(
        """
        SELECT * FROM audit_events
        WHERE ($1 = '' OR actor = $1)
          AND ($2 = '' OR strpos(action, $2) > 0)
          AND ($3 = '' OR outcome = $3)
          AND ($4::timestamptz IS NULL OR occurred_at >= $4)
          AND ($5::timestamptz IS NULL OR occurred_at < $5)
          AND ($6::timestamptz IS NULL OR (occurred_at, id) < ($6, $7::uuid))
        ORDER BY occurred_at DESC, id DESC
        LIMIT $8
        """,
        where.actor, where.action, where.outcome, where.start, where.end,
        *(after or (None, None)), limit,
    )  # fmt: skip
    return [_record(row) for row in rows]


def _record(row: asyncpg.Record) -> AuditRecord:
    fields = dict(row)
    record_id, occurred_at = fields.pop("id"), fields.pop("occurred_at")
    return AuditRecord(record_id, occurred_at, AuditEntry(**fields))
