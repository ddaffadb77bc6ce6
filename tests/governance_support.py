"""What the governance tests share: API keys made as an operator makes them, and calls
made with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from chatbot_server.governance.key_management import create_key


def with_key(secret: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {secret}"),)


@asynccontextmanager
async def app_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def new_key(
    url: str, name: str, role: str, daily_budget_usd: float | None = None, rate_limit: str = ""
) -> tuple[str, str]:
    """A fresh key's (id, secret), stored as `chatbot-server keys create` stores it."""
    async with app_pool(url) as pool:
        record, secret = await create_key(pool, name, role, daily_budget_usd, rate_limit)
    return str(record.id), secret
