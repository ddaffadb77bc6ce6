"""Creating and revoking API keys: the rules shared by `chatbot-server keys` and
AdminService."""

from __future__ import annotations

import math

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


async def create_key(
    pool: asyncpg.Pool,
    name: str,
    role: str,
    daily_budget_usd: float | None = None,
    rate_limit: str = "",
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
    secret = new_secret()
    record = await api_key_store.insert_key(
        pool, name, role, secret[:SHOWN_PREFIX_CHARS], secret_sha256(secret),
        budget_micro_usd, rate_limit,
    )  # fmt: skip
    return record, secret


async def revoke_key(pool: asyncpg.Pool, id_or_prefix: str) -> ApiKeyRecord:
    """Revokes the key with this id, or the one key whose shown prefix starts with this."""
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
    revoked = await api_key_store.revoke_key(pool, matches[0].id)
    assert revoked is not None
    return revoked
