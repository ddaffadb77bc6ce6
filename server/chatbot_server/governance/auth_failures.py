"""Refusing key guessing: failed authentications are counted per peer (the client's
address, as forwarded by a trusted edge) in the rate limiter that counts every other
limit, and a peer past `AUTH_FAILURE_LIMIT` has its keys refused before any is read."""

from __future__ import annotations

import structlog

from chatbot_server.config import Rate
from chatbot_server.governance.rate_limit_rules import Decision, Limit
from chatbot_server.governance.rate_limiter import LimiterUnavailable, RateLimiter

log = structlog.get_logger(__name__)
LIMIT_NAME = "auth_failures"


class AuthFailures:
    def __init__(self, limiter: RateLimiter, rate: Rate) -> None:
        self._limiter = limiter
        self._limits = [Limit(LIMIT_NAME, rate)]

    async def refusal(self, peer: str) -> Decision | None:
        """The peer's refusal when it used up its failures; None while it may try."""
        return await self._decide(peer, count=False)

    async def count(self, peer: str) -> Decision | None:
        """Counts one failure; the peer's refusal when it had none left."""
        return await self._decide(peer, count=True)

    async def _decide(self, peer: str, count: bool) -> Decision | None:
        try:
            decision = await self._limiter.acquire(_identity(peer), self._limits, count)
        except LimiterUnavailable:
            # The rate-limit interceptor reports the outage; keys are still checked.
            return None
        return None if decision.allowed else decision


def _identity(peer: str) -> str:
    return f"auth:{peer}"
