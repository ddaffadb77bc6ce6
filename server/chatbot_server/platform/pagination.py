"""AIP-158 pagination: page sizes and opaque page tokens over a keyset.

A token names the last row of a page in one listing (its scope). It is checked, not
trusted: a made-up token can only move a caller within the rows its own query may see,
so a malformed one is INVALID_ARGUMENT and never reaches the database."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from chatbot_server.platform.errors import bad_request

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20
# Rows are made between these times; a keyset outside them is forged.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 100


def page_size(requested: int) -> int:
    """0 means the default; above the maximum is capped (AIP-158); negative is an error."""
    if requested < 0:
        raise bad_request("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(created_at: datetime, row_id: UUID, scope: str) -> str:
    """A token for the page after the row (created_at, row_id) of a listing named `scope`."""
    raw = json.dumps({"c": created_at.isoformat(), "i": str(row_id), "s": scope})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, scope: str) -> tuple[datetime, UUID] | None:
    """The keyset a token continues from; None for the first page."""
    if not token:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw["s"] != scope:
            raise ValueError("token of another listing")
        created_at = datetime.fromisoformat(raw["c"])
        if created_at.tzinfo is None or not _EARLIEST <= created_at <= _LATEST:
            raise ValueError("not a time a row was made")
        return created_at, UUID(raw["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError):
        raise bad_request(
            "page_token",
            "is not a token this listing returned; pass the `next_page_token` of the previous "
            "page with the same filters, or none for the first page",
        ) from None


def by_record(row: Any) -> tuple[datetime, UUID]:
    """The keyset of a record with `created_at` and `id` attributes."""
    return row.created_at, row.id


def split_page(
    rows: Sequence[T],
    limit: int,
    scope: str,
    keyset: Callable[[T], tuple[datetime, UUID]] = by_record,
) -> tuple[list[T], str]:
    """The page (rows were fetched `limit + 1`, to see whether more follow) and the token
    of the next page, empty on the last."""
    if len(rows) <= limit:
        return list(rows), ""
    created_at, row_id = keyset(rows[limit - 1])
    return list(rows[:limit]), encode_token(created_at, row_id, scope)
