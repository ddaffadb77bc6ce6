"""Leases on the answers this server makes, so that none is left in flight when a server
dies: each answer's lease is renewed while it runs, together with what it would write if
lost now (its text so far), and every server takes over leases that ran out and records
those answers as failed with reason ANSWER_LOST, settling their budget reservations and
telling their resumers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

import asyncpg
import structlog

from chatbot_server.answers import answer_lease_store, chat_store
from chatbot_server.answers.answer_feed import AnswerFeed
from chatbot_server.answers.answer_lease_store import HeldLease
from chatbot_server.answers.answer_writing import WrittenAnswer, write_answer
from chatbot_server.governance.budget import Budget
from chatbot_server.platform import metrics
from chatbot_server.platform.database import DATABASE_ERRORS

log = structlog.get_logger(__name__)
# Leases taken over per look.
_CLAIM_LIMIT = 100
_MARK_ATTEMPTS = 4


class AnswerLeases:
    def __init__(
        self, pool: asyncpg.Pool, feed: AnswerFeed, budget: Budget, lease_seconds: float
    ) -> None:
        self._pool = pool
        self._feed = feed
        self._budget = budget
        self._ttl = timedelta(seconds=lease_seconds)
        # Renewed three times per lease: a renewal may be late or fail once.
        self._period = lease_seconds / 3
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[UUID, Callable[[], WrittenAnswer]] = {}
        self._task: asyncio.Task[None] | None = None

    def take(
        self, answer_id: UUID, if_lost: Callable[[], WrittenAnswer]
    ) -> asyncio.Future[HeldLease | None]:
        """Leases the answer (in the background); None if the lease could not be written,
        and the answer is then recorded without one."""
        self._held[answer_id] = if_lost
        return asyncio.ensure_future(self._take(answer_id, if_lost))

    async def _take(
        self, answer_id: UUID, if_lost: Callable[[], WrittenAnswer]
    ) -> HeldLease | None:
        try:
            await answer_lease_store.take(
                self._pool, answer_id, self.holder, self._ttl, if_lost().to_json()
            )
        except DATABASE_ERRORS as error:
            log.warning("answer.lease_failed", answer_id=str(answer_id),
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
            return None
        return HeldLease(answer_id, self.holder)

    def release(self, answer_id: UUID) -> None:
        """The answer is recorded: its lease went with its ledger row."""
        self._held.pop(answer_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="answer-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._renew()
                while await self._record_lost():
                    pass
            except DATABASE_ERRORS as error:
                # The dependency monitor reports the database; try again next round.
                log.warning("answer.leases_unavailable", error=f"{type(error).__name__}: {error}")
            except Exception:
                # Whatever one lost answer did, the leases of the others must go on.
                log.exception("answer.leases_failed")
            await asyncio.sleep(self._period)

    async def _renew(self) -> None:
        if self._held:
            held = [(answer_id, if_lost().to_json()) for answer_id, if_lost in self._held.items()]
            await answer_lease_store.renew(self._pool, self.holder, self._ttl, held)

    async def _record_lost(self) -> bool:
        """Records the answers whose leases ran out; whether there may be more."""
        claimed = await answer_lease_store.claim_expired(
            self._pool, self.holder, self._ttl, _CLAIM_LIMIT
        )
        for answer_id, raw in claimed:
            answer = WrittenAnswer.from_json(raw)
            await chat_store.store_question(self._pool, answer.asked)
            spent = await write_answer(self._pool, answer, HeldLease(answer_id, self.holder))
            self._budget.spent(spent)
            metrics.ANSWERS.labels(answer.entry.finish_reason, answer.entry.grounding).inc()
            log.warning("answer.lost", answer_id=str(answer_id), model=answer.model,
                        characters=len(answer.text))  # fmt: skip
            await self._tell_resumers(str(answer_id))
        return len(claimed) == _CLAIM_LIMIT

    async def _tell_resumers(self, answer_id: str) -> None:
        """Marks the answer lost in its feed; retried, as a resumer waits for nothing else."""
        for attempt in range(1, _MARK_ATTEMPTS + 1):
            try:
                await self._feed.mark_lost(answer_id)
                return
            except Exception as error:
                log.warning("answer.feed_unavailable", answer_id=answer_id, attempt=attempt,
                            error=f"{type(error).__name__}: {error}")  # fmt: skip
                await asyncio.sleep(attempt * 0.5)
