"""Where an answer's events wait for a caller who comes back: a Redis Stream per answer,
readable from every replica, or process memory when there is no Redis (one server).

Each answer has its events in order (sequence numbers from 1, the last one marked, or a
mark that the answer was lost with its server), the identity that asked, and two flags: a
cancel request, and a resumer's recent presence. Everything expires a while after the
answer's last event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as redis

# How long a resumer's presence counts without being renewed.
PRESENCE_SECONDS = 3
# How long events stay readable after the last one, beyond the resume window.
KEEP_SECONDS = 300
_BLOCK_MS = 1000


class AnswerGone(Exception):
    """The answer's events are not (or no longer) kept."""


class AnswerLost(Exception):
    """The server making the answer died before it ended (ANSWER_LOST)."""


@dataclass(frozen=True)
class FeedEvent:
    sequence: int
    message: bytes
    # The answer's last event.
    last: bool


class AnswerFeed(Protocol):
    async def open(self, answer_id: str, owner: str) -> None: ...

    async def append(self, answer_id: str, events: list[FeedEvent]) -> None:
        """Adds events in order, in one round trip."""
        ...

    async def owner(self, answer_id: str) -> str | None:
        """The identity that asked; None when the answer is unknown or expired."""
        ...

    def follow(self, answer_id: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """The events after `after`, then each new one as it comes, until the last; raises
        AnswerLost at the mark of a lost answer."""
        ...

    async def mark_lost(self, answer_id: str) -> None:
        """Ends the answer for its followers: its server died."""
        ...

    async def forget(self, answer_id: str) -> None:
        """Drops the answer: it cannot be resumed."""
        ...

    async def request_cancel(self, answer_id: str) -> None: ...

    async def cancel_requested(self, answer_ids: list[str]) -> set[str]:
        """Those of the answers that someone asked to cancel."""
        ...

    async def mark_present(self, answer_id: str) -> None:
        """A resumer is following the answer; renewed while it does."""
        ...

    async def present(self, answer_id: str) -> bool: ...


class RedisAnswerFeed:
    def __init__(self, client: redis.Redis, followers: redis.Redis, keep_seconds: int) -> None:
        self._redis = client
        # Blocking reads hold their connection: they get their own client.
        self._followers = followers
        self._keep = keep_seconds

    async def open(self, answer_id: str, owner: str) -> None:
        await self._redis.set(_key(answer_id, "owner"), owner, ex=self._keep)

    async def append(self, answer_id: str, events: list[FeedEvent]) -> None:
        stream, owner = _key(answer_id, "events"), _key(answer_id, "owner")
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                fields: dict[str, str | bytes | int] = {"s": event.sequence, "m": event.message}
                if event.last:
                    fields["e"] = 1
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            pipe.expire(stream, self._keep)
            pipe.expire(owner, self._keep)
            await pipe.execute()

    async def owner(self, answer_id: str) -> str | None:
        value = await self._redis.get(_key(answer_id, "owner"))
        return value.decode() if isinstance(value, bytes) else value

    async def follow(self, answer_id: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        events = _key(answer_id, "events")
        last_id = "0-0"
        while True:
            # [[key, [(entry id, {field: value})...]]], or empty when nothing came.
            read: Any = await self._followers.xread({events: last_id}, count=200, block=_BLOCK_MS)
            if not read:
                if not await self._redis.exists(_key(answer_id, "owner")):
                    raise AnswerGone(answer_id)
                continue
            for entry_id, fields in read[0][1]:
                last_id = entry_id
                if b"lost" in fields:
                    raise AnswerLost(answer_id)
                sequence = int(fields[b"s"])
                if sequence > after:
                    yield sequence, fields[b"m"]
                if b"e" in fields:
                    return

    async def mark_lost(self, answer_id: str) -> None:
        stream = _key(answer_id, "events")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {"lost": 1})
            pipe.expire(stream, self._keep)
            pipe.expire(_key(answer_id, "owner"), self._keep)
            await pipe.execute()

    async def forget(self, answer_id: str) -> None:
        await self._redis.delete(_key(answer_id, "owner"), _key(answer_id, "events"))

    async def request_cancel(self, answer_id: str) -> None:
        await self._redis.set(_key(answer_id, "cancel"), 1, ex=self._keep)

    async def cancel_requested(self, answer_ids: list[str]) -> set[str]:
        flags = await self._redis.mget([_key(answer_id, "cancel") for answer_id in answer_ids])
        return {answer_id for answer_id, flag in zip(answer_ids, flags, strict=True) if flag}

    async def mark_present(self, answer_id: str) -> None:
        await self._redis.set(_key(answer_id, "present"), 1, ex=PRESENCE_SECONDS)

    async def present(self, answer_id: str) -> bool:
        return bool(await self._redis.exists(_key(answer_id, "present")))


def _key(answer_id: str, part: str) -> str:
    # The braces keep one answer's keys in one Redis Cluster slot.
    return f"chatbot:answer:{{{answer_id}}}:{part}"


@dataclass
class _Kept:
    owner: str
    events: list[tuple[int, bytes]] = field(default_factory=list)
    ended: bool = False
    lost: bool = False
    cancel: bool = False
    present_until: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryAnswerFeed:
    """The same, in this process: enough for one server (`make run`)."""

    def __init__(self, keep_seconds: int) -> None:
        self._keep = keep_seconds
        self._answers: dict[str, _Kept] = {}

    async def open(self, answer_id: str, owner: str) -> None:
        self._answers[answer_id] = _Kept(owner)

    async def append(self, answer_id: str, events: list[FeedEvent]) -> None:
        kept = self._answers.get(answer_id)
        if kept is None:
            return
        kept.events.extend((event.sequence, event.message) for event in events)
        kept.ended = events[-1].last
        kept.changed.set()
        kept.changed = asyncio.Event()
        if kept.ended:
            asyncio.get_running_loop().call_later(self._keep, self._answers.pop, answer_id, None)

    async def owner(self, answer_id: str) -> str | None:
        kept = self._answers.get(answer_id)
        return kept.owner if kept is not None else None

    async def follow(self, answer_id: str, after: int) -> AsyncIterator[tuple[int, bytes]]:
        sent = 0
        while True:
            kept = self._answers.get(answer_id)
            if kept is None:
                raise AnswerGone(answer_id)
            changed = kept.changed
            # Events may arrive while the caller takes one: count each as it goes.
            while sent < len(kept.events):
                sequence, message = kept.events[sent]
                sent += 1
                if sequence > after:
                    yield sequence, message
            if kept.lost:
                raise AnswerLost(answer_id)
            if kept.ended:
                return
            await changed.wait()

    async def mark_lost(self, answer_id: str) -> None:
        kept = self._answers.get(answer_id)
        if kept is not None:
            kept.lost = True
            kept.changed.set()

    async def forget(self, answer_id: str) -> None:
        self._answers.pop(answer_id, None)

    async def request_cancel(self, answer_id: str) -> None:
        kept = self._answers.get(answer_id)
        if kept is not None:
            kept.cancel = True

    async def cancel_requested(self, answer_ids: list[str]) -> set[str]:
        return {
            answer_id
            for answer_id in answer_ids
            if (kept := self._answers.get(answer_id)) is not None and kept.cancel
        }

    async def mark_present(self, answer_id: str) -> None:
        kept = self._answers.get(answer_id)
        if kept is not None:
            kept.present_until = time.monotonic() + PRESENCE_SECONDS

    async def present(self, answer_id: str) -> bool:
        kept = self._answers.get(answer_id)
        return kept is not None and kept.present_until > time.monotonic()
