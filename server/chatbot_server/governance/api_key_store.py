"""The `api_keys` table: the named queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from chatbot_server.governance.api_keys import ApiKeyRecord, KeyMatch

_COLUMNS = (
    "id, name, role, prefix, revoked_at, last_used_at, created_at, daily_budget_micro_usd, "
    "rate_limit, expires_at, previous_secret_expires_at"
)


def _record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(**dict(row))


async def insert_key(
    pool: asyncpg.Pool,
    name: str,
    role: str,
    prefix: str,
    sha256: str,
    daily_budget_micro_usd: int | None,
    rate_limit: str,
    expires_in: timedelta | None,
) -> ApiKeyRecord:
    row = await pool.fetchrow(
        f"""
        INSERT INTO api_keys (name, role, prefix, secret_sha256, daily_budget_micro_usd,
                              rate_limit, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, now() + $7)
        RETURNING {_COLUMNS}
        """,
        name, role, prefix, sha256, daily_budget_micro_usd, rate_limit, expires_in,
    )  # fmt: skip
    return _record(row)


async def use_key(pool: asyncpg.Pool, sha256: str) -> KeyMatch | None:
    """The key with this secret hash (its current or its previous one), marked as used now;
    None when there is none."""
    row = await pool.fetchrow(
        f"""
        UPDATE api_keys SET last_used_at = now()
        WHERE secret_sha256 = $1 OR previous_secret_sha256 = $1
        RETURNING {_COLUMNS}, secret_sha256 <> $1 AS previous_secret
        """,
        sha256,
    )
    if row is None:
        return None
    fields = dict(row)
    previous = fields.pop("previous_secret")
    return KeyMatch(ApiKeyRecord(**fields), previous)


async def rotate_key(
    pool: asyncpg.Pool,
    key_id: UUID,
    prefix: str,
    sha256: str,
    overlap: timedelta,
    expires_in: timedelta | None,
) -> ApiKeyRecord | None:
    """Gives an active key a new secret; the old one works for `overlap` more. A new
    expiry counts from now; None keeps the key's."""
    row = await pool.fetchrow(
        f"""
        UPDATE api_keys
        SET previous_secret_sha256 = secret_sha256,
            previous_secret_expires_at = now() + $4,
            secret_sha256 = $3, prefix = $2,
            expires_at = coalesce(now() + $5, expires_at)
        WHERE id = $1 AND revoked_at IS NULL
        RETURNING {_COLUMNS}
        """,
        key_id, prefix, sha256, overlap, expires_in,
    )  # fmt: skip
    return _record(row) if row is not None else None


async def list_keys(
    pool: asyncpg.Pool, include_revoked: bool, limit: int, after: tuple[datetime, UUID] | None
) -> list[ApiKeyRecord]:
    rows = await pool.fetch(
        f"""
        SELECT {_COLUMNS} FROM api_keys
        WHERE ($1 OR revoked_at IS NULL)
          AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,
        include_revoked, *(after or (None, None)), limit,
    )  # fmt: skip
    return [_record(row) for row in rows]


async def find_keys(pool: asyncpg.Pool, id_or_prefix: str) -> list[ApiKeyRecord]:
    """Keys whose id is `id_or_prefix`, or whose shown prefix starts with it."""
    rows = await pool.fetch(
        f"""
        SELECT {_COLUMNS} FROM api_keys
        WHERE id::text = lower($1) OR (length($1) >= 6 AND prefix LIKE $2)
        ORDER BY created_at DESC
        """,
        id_or_prefix,
        _like_prefix(id_or_prefix),
    )
    return [_record(row) for row in rows]


async def revoke_key(pool: asyncpg.Pool, key_id: UUID) -> ApiKeyRecord | None:
    row = await pool.fetchrow(
        f"""
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        key_id,
    )
    return _record(row) if row is not None else None


async def get_key(pool: asyncpg.Pool, key_id: UUID) -> ApiKeyRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id)
    return _record(row) if row is not None else None


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
