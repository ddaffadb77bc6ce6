"""Which rate limits apply to a call.

Pure: the limiters (Redis and in-process) count; this decides what they count against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chatbot_server.config import Rate, RateLimitSettings

CHAT_METHOD = "/chatbot.v1.ChatService/StreamAnswer"
# A file counts once against the upload limit, when it starts.
UPLOAD_METHODS = frozenset(
    f"/chatbot.v1.DocumentService/{name}" for name in ("UploadDocument", "BeginUpload")
)
# The further calls of a resumable upload, bounded by the size it declared: only the burst
# limit paces them, so a large file is not refused half-way by the per-call limits.
UPLOAD_PIECE_METHODS = frozenset(
    f"/chatbot.v1.DocumentService/{name}" for name in ("AppendUpload", "GetUpload")
)


@dataclass(frozen=True)
class Limit:
    """A named rate for one identity, e.g. the `chat` limit of `key:...`."""

    name: str
    rate: Rate


@dataclass(frozen=True)
class RateLimitPolicy:
    anonymous: Rate
    authenticated: Rate
    chat: Rate
    upload: Rate
    burst: Rate

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimitPolicy:
        return cls(
            settings.anonymous, settings.authenticated, settings.chat, settings.upload,
            settings.burst,
        )  # fmt: skip

    def limits_for(self, method: str, authenticated: bool, override: Rate | None) -> list[Limit]:
        """Every limit a call counts against: the identity's, its method class's, burst."""
        if method in UPLOAD_PIECE_METHODS:
            return [Limit("burst", self.burst)]
        limits = [
            Limit("authenticated", override or self.authenticated)
            if authenticated
            else Limit("anonymous", self.anonymous),
            Limit("burst", self.burst),
        ]
        if method == CHAT_METHOD:
            limits.append(Limit("chat", self.chat))
        elif method in UPLOAD_METHODS:
            limits.append(Limit("upload", self.upload))
        return limits


@dataclass(frozen=True)
class LimitState:
    """One limit after a call was counted (or refused) against it."""

    limit: Limit
    # Calls left in the window after this one.
    remaining: int
    # Seconds until the oldest counted call leaves the window and a call more is allowed.
    reset_seconds: float
    # Seconds until this limit admits a call again; 0 when it admitted this one.
    retry_after_seconds: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    states: list[LimitState]

    def tightest(self) -> LimitState:
        """The state to report: the refusing limit with the longest wait, else the one with
        the fewest calls left."""
        if not self.allowed:
            return max(self.states, key=lambda s: s.retry_after_seconds)
        return min(self.states, key=lambda s: (s.remaining, -s.reset_seconds))


def response_headers(identity: str, decision: Decision) -> list[tuple[str, str]]:
    """`x-ratelimit-*` metadata for the call, plus `retry-after` when it was refused."""
    state = decision.tightest()
    headers = [
        ("x-ratelimit-limit", str(state.limit.rate.count)),
        ("x-ratelimit-remaining", str(state.remaining)),
        ("x-ratelimit-reset", str(math.ceil(state.reset_seconds))),
        ("x-ratelimit-policy", f"{state.limit.name};{state.limit.rate}"),
        ("x-ratelimit-identity", identity),
    ]
    if not decision.allowed:
        headers.append(("retry-after", str(math.ceil(state.retry_after_seconds))))
    return headers
