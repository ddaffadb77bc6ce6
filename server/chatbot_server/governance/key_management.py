"""Creating, rotating and revoking API keys: the rules shared by `chatbot-server keys` and
AdminService."""

from __future__ import annotations

import math
from datetime import timedelta

import asyncpg
import grpc

from chatbot_server.config import parse_rate
from chatbot_server.governance import api_key_store
from chatbot_server.governance.api_keys import (
    ROLES,
    SHOWN_PREFIX_CHARS,
    ApiKeyRecord,
    new_secret,
    secret_sha256,
)
from chatbot_server.money.pricing import MICRO_USD_PER_USD
from chatbot_server.platform.errors import ServiceError, bad_request

# How long a rotated key's old secret keeps working unless told otherwise.
DEFAULT_OVERLAP = timedelta(hours=24)
# Expiries and overlaps past ten years are mistakes.
MAX_SPAN = timedelta(days=3653)


async def create_key(
    pool: asyncpg.Pool,
    name: str,
    role: str,
    daily_budget_usd: float | None = None,
    rate_limit: str = "",
    expires_in: timedelta | None = None,
) -> tuple[ApiKeyRecord, str]:
    """Stores a new key (its SHA-256 only) and returns it with its secret."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise bad_request("name", "must be 1 to 100 characters")
    if role not in ROLES:
        raise bad_request("role", f"must be one of {', '.join(ROLES)}")
    budget_micro_usd = None
    if daily_budget_usd is not None:
        if not math.isfinite(daily_budget_usd) or daily_budget_usd < 0:
            raise bad_request("daily_budget_usd", "must be a number of US dollars, 0 or more")
        budget_micro_usd = round(daily_budget_usd * MICRO_USD_PER_USD)
    if rate_limit:
        try:
            rate_limit = str(parse_rate(rate_limit))
        except ValueError as error:
            raise bad_request("rate_limit", str(error)) from None
    _check_span("expires_in", expires_in, positive=True)
    secret = new_secret()
    record = await api_key_store.insert_key(
        pool, name, role, secret[:SHOWN_PREFIX_CHARS], secret_sha256(secret),
        budget_micro_usd, rate_limit, expires_in,
    )  # fmt: skip
    return record, secret


async def rotate_key(
    pool: asyncpg.Pool,
    id_or_prefix: str,
    overlap: timedelta = DEFAULT_OVERLAP,
    expires_in: timedelta | None = None,
) -> tuple[ApiKeyRecord, str]:
    """Gives the key a new secret; its old secret works for `overlap` more. `expires_in`
    sets a new expiry from now; None keeps the key's."""
    _check_span("overlap", overlap, positive=False)
    _check_span("expires_in", expires_in, positive=True)
    key = await _one_key(pool, id_or_prefix)
    secret = new_secret()
    rotated = await api_key_store.rotate_key(
        pool, key.id, secret[:SHOWN_PREFIX_CHARS], secret_sha256(secret), overlap, expires_in
    )
    if rotated is None:
        raise ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"the API key {key.id} is revoked; create a new key instead",
            reason="API_KEY_REVOKED",
        )
    return rotated, secret


async def revoke_key(pool: asyncpg.Pool, id_or_prefix: str) -> ApiKeyRecord:
    """Revokes the key with this id, or the one key whose shown prefix starts with this."""
    revoked = await api_key_store.revoke_key(pool, (await _one_key(pool, id_or_prefix)).id)
    assert revoked is not None
    return revoked


def _check_span(field: str, span: timedelta | None, positive: bool) -> None:
    if span is None:
        return
    if span > MAX_SPAN or span < timedelta(0) or (positive and not span):
        least = "more than 0" if positive else "0 or more"
        raise bad_request(field, f"must be {least} and at most {MAX_SPAN.days} days")


async def _one_key(pool: asyncpg.Pool, id_or_prefix: str) -> ApiKeyRecord:
    """The key with this id, or the one key whose shown prefix starts with this."""
    matches = await api_key_store.find_keys(pool, id_or_prefix.strip())
    if not matches:
        raise ServiceError(
            grpc.StatusCode.NOT_FOUND,
            f"no API key has the id or prefix {id_or_prefix!r}",
            reason="API_KEY_NOT_FOUND",
        )
    if len(matches) > 1:
        raise ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"{len(matches)} keys start with {id_or_prefix!r}; give the id or a longer prefix",
            reason="API_KEY_AMBIGUOUS",
        )
    return matches[0]
