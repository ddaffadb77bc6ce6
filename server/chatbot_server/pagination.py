"""AIP-158 pagination: page sizes and opaque, tamper-evident page tokens over a keyset."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from chatbot_server.errors import bad_request

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20
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
        return datetime.fromisoformat(raw["c"]), UUID(raw["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
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
