"""Counting calls against rate limits: exact sliding windows, in Redis or in this process.

Each limit of an identity is a log of the times of the calls it admitted within its
window. A call is admitted only when every limit that applies has room, and then it is
counted in all of them; a refused call is counted in none. In Redis this is one Lua
script (one round trip, atomic across any number of server processes, timed by the Redis
server's clock); the in-process limiter does the same for a single process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from chatbot_server.governance.rate_limit_rules import Decision, Limit, LimitState

KEY_PREFIX = "ratelimit:"
# After Redis failed, calls skip it for this long instead of each waiting for a timeout.
RETRY_REDIS_AFTER_SECONDS = 1.0


class LimiterUnavailable(RuntimeError):
    """The shared counters could not be reached."""


class RateLimiter(Protocol):
    async def acquire(self, identity: str, limits: Sequence[Limit], count: bool = True) -> Decision:
        """Counts one call of `identity` against `limits`, or refuses it; with `count`
        false, only says whether it would be admitted."""
        ...

    async def clear(self, identity: str | None) -> int:
        """Forgets the counted calls of one identity (or of all); how many counters went."""
        ...


def _key(identity: str, limit: Limit) -> str:
    # The braces make one identity's counters share a Redis Cluster slot, as one script
    # must only touch keys of one slot.
    return f"{KEY_PREFIX}{{{identity}}}:{limit.name}"


_SLIDING_WINDOWS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local allowed = 1
local result = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  local retry = 0
  if count >= limit then
    allowed = 0
    local blocking = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    retry = tonumber(blocking[2]) + window - now
  end
  local reset = window
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if oldest[2] then reset = tonumber(oldest[2]) + window - now end
  result[3 * i - 1] = count
  result[3 * i] = retry
  result[3 * i + 1] = reset
end
if allowed == 1 and ARGV[1] ~= '' then
  for i = 1, #KEYS do
    redis.call('ZADD', KEYS[i], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]))
  end
end
result[1] = allowed
return result
"""


class RedisRateLimiter:
    """Limits shared by every server process that uses the same Redis.

    Calls that arrive in the same turn of the event loop are sent together, one script run
    each, in one pipelined round trip: under load the per-call cost of talking to Redis
    is shared, while a lone call still waits for nothing but its own round trip.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sha = hashlib.sha1(_SLIDING_WINDOWS.encode()).hexdigest()
        self._skip_until = 0.0
        self._batch: list[tuple[list[str], list[str | int], asyncio.Future[list[Any]]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def acquire(self, identity: str, limits: Sequence[Limit], count: bool = True) -> Decision:
        if time.monotonic() < self._skip_until:
            raise LimiterUnavailable("Redis failed a moment ago")
        # The call's entry in each window; none when only looking.
        args: list[str | int] = [uuid.uuid4().hex if count else ""]
        for limit in limits:
            args += [limit.rate.count, limit.rate.seconds * 1000]
        result: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append(([_key(identity, limit) for limit in limits], args, result))
        try:
            raw = await result
        except (RedisError, OSError) as error:
            self._skip_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
            raise LimiterUnavailable(f"{type(error).__name__}: {error}") from error
        allowed = raw[0] == 1
        states = [
            _state(
                limit, int(raw[3 * i + 1]), allowed, raw[3 * i + 2] / 1000, raw[3 * i + 3] / 1000
            )
            for i, limit in enumerate(limits)
        ]
        return Decision(allowed, states)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.create_task(self._run(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _run(
        self, batch: list[tuple[list[str], list[str | int], asyncio.Future[list[Any]]]]
    ) -> None:
        try:
            replies = await self._evaluate([(keys, args) for keys, args, _ in batch])
        except (RedisError, OSError) as error:
            for _, _, result in batch:
                if not result.done():
                    result.set_exception(error)
            return
        for (_, _, result), reply in zip(batch, replies, strict=True):
            if result.done():
                continue
            if isinstance(reply, Exception):
                result.set_exception(reply)
            else:
                result.set_result(reply)

    async def _evaluate(self, calls: list[tuple[list[str], list[str | int]]]) -> list[Any]:
        """One EVALSHA per call in one round trip; the script is loaded if Redis lost it."""
        replies = await self._pipelined(calls)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self._client.script_load(_SLIDING_WINDOWS)
            replies = await self._pipelined(calls)
        return replies

    async def _pipelined(self, calls: list[tuple[list[str], list[str | int]]]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def clear(self, identity: str | None) -> int:
        pattern = KEY_PREFIX + ("*" if identity is None else "{" + _glob_escape(identity) + "}:*")
        cleared = 0
        try:
            async for key in self._client.scan_iter(match=pattern, count=500):
                cleared += await self._client.delete(key)
        except (RedisError, OSError) as error:
            raise LimiterUnavailable(f"{type(error).__name__}: {error}") from error
        return cleared


class InProcessRateLimiter:
    """The same limits for a single process, when no Redis is configured."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._calls = 0

    async def acquire(self, identity: str, limits: Sequence[Limit], count: bool = True) -> Decision:
        now = self._clock()
        self._sweep(now)
        counted = []
        allowed = True
        for limit in limits:
            log = self._logs.setdefault(_key(identity, limit), deque())
            window = limit.rate.seconds
            while log and log[0] <= now - window:
                log.popleft()
            retry = 0.0
            if len(log) >= limit.rate.count:
                allowed = False
                retry = log[len(log) - limit.rate.count] + window - now
            reset = log[0] + window - now if log else float(window)
            counted.append((limit, log, len(log), retry, reset))
        if allowed and count:
            for _limit, log, *_ in counted:
                log.append(now)
        states = [
            _state(limit, count, allowed, retry, reset) for limit, _, count, retry, reset in counted
        ]
        return Decision(allowed, states)

    async def clear(self, identity: str | None) -> int:
        prefix = KEY_PREFIX + ("" if identity is None else "{" + identity + "}:")
        cleared = [key for key in self._logs if key.startswith(prefix)]
        for key in cleared:
            del self._logs[key]
        return len(cleared)

    def _sweep(self, now: float) -> None:
        """Drops the logs of identities idle for a day, so memory stays bounded."""
        self._calls += 1
        if self._calls % 10_000:
            return
        for key in [k for k, log in self._logs.items() if not log or log[-1] < now - 86_400]:
            del self._logs[key]


def _state(limit: Limit, count: int, allowed: bool, retry: float, reset: float) -> LimitState:
    remaining = limit.rate.count - count - (1 if allowed else 0)
    return LimitState(
        limit=limit,
        remaining=max(0, remaining),
        reset_seconds=max(0.0, reset),
        retry_after_seconds=max(0.0, retry),
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
