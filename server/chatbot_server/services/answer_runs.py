"""Answers that outlive the call that asked: each runs as a task of its own, numbers its
events and keeps them in the answer feed, so that a caller whose stream broke can resume
it from any replica, and anyone may stop it with CancelAnswer.

The asking call follows its answer in this process (no round trip on the way to the first
token). When that caller leaves, the answer goes on for ANSWER_RESUME_SECONDS while nobody
follows it, then is cancelled and recorded as cancelled, as an answer whose caller left
always was; with 0 it is cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from uuid import UUID

import asyncpg
import grpc
import structlog

from chatbot.v1 import chat_service_pb2 as pb
from chatbot_server.answers import chat_store
from chatbot_server.answers.answer_events import AnswerStarted
from chatbot_server.answers.answer_feed import AnswerFeed, AnswerGone, AnswerLost, FeedEvent
from chatbot_server.answers.answer_writing import answer_lost_error
from chatbot_server.answers.answering import Answerer, Question
from chatbot_server.platform.errors import ServiceError
from chatbot_server.services.answer_messages import stream_answer_response

log = structlog.get_logger(__name__)
# How often a running answer looks for a cancel request, and a left one for a resumer.
POLL_SECONDS = 0.5
# How long CancelAnswer waits to see the answer end, looking this often.
CANCEL_WAIT_SECONDS = 10.0
CANCEL_POLL_SECONDS = 0.2


class _LocalFollow:
    """The asking call's view of its answer, in this process."""

    def __init__(self) -> None:
        self.messages: list[pb.StreamAnswerResponse] = []
        # Set once the answer has started: where its events wait for a resume.
        self.writer: _FeedWriter | None = None
        # Done once the answer can be resumed, or recorded as lost, from another server: the
        # caller learns its id only then.
        self.resumable: asyncio.Future[Any] | None = None
        self.ended = False
        self.error: ServiceError | None = None
        self.changed = asyncio.Event()

    def add(self, message: pb.StreamAnswerResponse) -> None:
        self.messages.append(message)
        self._notify()

    def end(self, error: ServiceError | None) -> None:
        self.ended, self.error = True, error
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[pb.StreamAnswerResponse]:
        sent = 0
        while True:
            changed = self.changed
            # Messages may arrive while the caller takes one: count each as it goes.
            while sent < len(self.messages):
                if sent == 0 and self.resumable is not None:
                    await asyncio.shield(self.resumable)
                sent += 1
                yield self.messages[sent - 1]
            if self.ended:
                if self.error is not None:
                    raise self.error
                return
            await changed.wait()


class _FeedWriter:
    """Keeps one answer's events for the feed. While the asking caller follows the answer
    they stay here, and the feed holds only the answer's owner (for ResumeAnswer and
    CancelAnswer): writing every event of every answer to Redis crowded the event loop
    enough, at 500 concurrent answers, to leave new calls unserved. Once the caller has
    left, or the answer is cancelled, every event so far is written, and each one after it,
    as many per round trip as have gathered. The feed failing costs resumability, never the
    answer."""

    def __init__(self, feed: AnswerFeed, answer_id: str, owner: str) -> None:
        self._feed = feed
        self._answer_id = answer_id
        self._owner = owner
        self._live = False
        # Set when the answer could not be leased: no server could record it as lost, so
        # nobody may resume it.
        self.withdrawn = False
        self._pending: list[FeedEvent] = []
        self._opening = asyncio.create_task(self._open())
        self._writing: asyncio.Task[None] | None = None

    def add(self, event: FeedEvent) -> None:
        if not self.withdrawn:
            self._pending.append(event)
            self._write_soon()

    def go_live(self) -> None:
        """From now on every event goes to the feed, those kept so far first."""
        self._live = True
        self._write_soon()

    def _write_soon(self) -> None:
        if self.withdrawn:
            return
        if self._live and (self._writing is None or self._writing.done()):
            self._writing = asyncio.create_task(self._write())

    async def _open(self) -> None:
        try:
            await self._feed.open(self._answer_id, self._owner)
        except Exception as error:
            log.warning("answer.feed_unavailable", answer_id=self._answer_id,
                        error=f"{type(error).__name__}: {error}")  # fmt: skip

    async def _write(self) -> None:
        await self._opening
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._feed.append(self._answer_id, batch)
            except Exception as error:
                log.warning("answer.feed_unavailable", answer_id=self._answer_id,
                            error=f"{type(error).__name__}: {error}")  # fmt: skip

    async def opened(self) -> None:
        await asyncio.shield(self._opening)

    async def withdraw(self) -> None:
        """Takes the answer out of the feed, before its caller learns its id."""
        self.withdrawn, self._pending = True, []
        await self.opened()
        try:
            await self._feed.forget(self._answer_id)
        except Exception as error:
            log.warning("answer.feed_unavailable", answer_id=self._answer_id,
                        error=f"{type(error).__name__}: {error}")  # fmt: skip

    async def flushed(self) -> None:
        await self.opened()
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)


class AnswerRuns:
    def __init__(
        self, pool: asyncpg.Pool, answerer: Answerer, feed: AnswerFeed, resume_seconds: float
    ) -> None:
        self._pool = pool
        self._answerer = answerer
        self._feed = feed
        self._resume_seconds = resume_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        # The answers running here, for the cancel requests that may come through any server.
        self._running: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def ask(
        self, question: Question, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAnswerResponse]:
        """Starts the answer and follows it; a caller that leaves early lets it wait for a
        resume."""
        local = _LocalFollow()
        answer = self._spawn(self._produce(question, local))
        waiting: list[asyncio.Task[None]] = []

        def caller_left() -> None:
            if not local.ended and not answer.done() and not waiting:
                if local.writer is not None:
                    local.writer.go_live()
                waiting.append(self._spawn(self._wait_for_resume(answer, local)))

        # Whichever comes first: the generator closed, or grpc's word that the call ended
        # (the generator may be left suspended at a yield when the caller goes).
        context.add_done_callback(lambda _: caller_left())
        try:
            async for message in local.follow():
                yield message
        finally:
            caller_left()

    async def resume(
        self, answer_id: str, after: int, identity: str
    ) -> AsyncIterator[pb.StreamAnswerResponse]:
        await self._authorize(answer_id, identity)
        presence = self._spawn(self._keep_present(answer_id))
        try:
            async for _, data in self._feed.follow(answer_id, after):
                yield pb.StreamAnswerResponse.FromString(data)
        except AnswerGone:
            raise _gone(answer_id) from None
        except AnswerLost:
            raise answer_lost_error(answer_id) from None
        finally:
            presence.cancel()

    async def cancel(self, answer_id: str, identity: str) -> bool:
        """Asks the answer to stop wherever it runs; whether it ended cancelled, as its
        recorded message says (False when it had ended otherwise)."""
        await self._authorize(answer_id, identity)
        await self._feed.request_cancel(answer_id)
        try:
            async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                while True:
                    recorded = await chat_store.get_message(self._pool, UUID(answer_id))
                    if recorded is not None:
                        return recorded.status == "cancelled"
                    await asyncio.sleep(CANCEL_POLL_SECONDS)
        except TimeoutError:
            # Not ended yet: the request stands, and the answer stops when its server sees it.
            return True

    async def stop(self) -> None:
        """Cancels every answer still running (the server is stopping) and waits until each
        has been recorded."""
        for task in list(self._tasks):
            task.cancel()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _produce(self, question: Question, local: _LocalFollow) -> None:
        sequence = 0
        answer_id = ""
        writer: _FeedWriter | None = None
        ended = False
        try:
            async for event in self._answerer.answer(question):
                sequence += 1
                message = stream_answer_response(event)
                message.sequence = sequence
                if isinstance(event, AnswerStarted):
                    answer_id = message.started.assistant_message_id
                    message.started.answer_id = answer_id
                    writer = _FeedWriter(self._feed, answer_id, question.request.identity)
                    local.writer = writer
                    local.resumable = asyncio.ensure_future(_resumable(writer, event.leased))
                    self._register(answer_id)
                ended = message.WhichOneof("event") == "done"
                local.add(message)
                if writer is not None:
                    writer.add(FeedEvent(sequence, message.SerializeToString(), ended))
            local.end(None)
        except ServiceError as error:
            local.end(error)
            _end_for_resumers(writer, sequence, ended, pb.FINISH_REASON_ERROR)
        except asyncio.CancelledError:
            local.end(_cancelled())
            _end_for_resumers(writer, sequence, ended, pb.FINISH_REASON_CANCELLED)
        finally:
            self._running.pop(answer_id, None)
            if writer is not None:
                await writer.flushed()

    def _register(self, answer_id: str) -> None:
        answer = asyncio.current_task()
        assert answer is not None
        self._running[answer_id] = answer
        if self._poller is None or self._poller.done():
            self._poller = self._spawn(self._poll_cancel_requests())

    async def _poll_cancel_requests(self) -> None:
        """One look per half second for all the answers running here: the request may have
        come to any replica."""
        while self._running:
            await asyncio.sleep(POLL_SECONDS)
            try:
                requested = await self._feed.cancel_requested(list(self._running))
            except Exception as error:
                log.warning("answer.feed_unavailable", error=f"{type(error).__name__}: {error}")
                continue
            for answer_id in requested:
                answer = self._running.pop(answer_id, None)
                if answer is not None:
                    log.info("answer.cancel_requested", answer_id=answer_id)
                    answer.cancel()

    async def _wait_for_resume(self, answer: asyncio.Task[None], local: _LocalFollow) -> None:
        """The asking caller left: keep the answer while someone may resume it."""
        answer_id = next(
            (m.started.answer_id for m in local.messages if m.WhichOneof("event") == "started"),
            "",
        )
        # An answer nobody may resume stops when its caller leaves.
        window = (
            0.0 if local.writer is not None and local.writer.withdrawn else self._resume_seconds
        )
        last_seen = time.monotonic()
        while not answer.done():
            if window and answer_id and await self._feed.present(answer_id):
                last_seen = time.monotonic()
            if time.monotonic() - last_seen >= window:
                answer.cancel()
                break
            await asyncio.sleep(min(POLL_SECONDS, window))
        with contextlib.suppress(asyncio.CancelledError):
            await answer

    async def _keep_present(self, answer_id: str) -> None:
        while True:
            await self._feed.mark_present(answer_id)
            await asyncio.sleep(1.0)

    async def _authorize(self, answer_id: str, identity: str) -> None:
        owner = await self._feed.owner(answer_id)
        if owner is None:
            raise _gone(answer_id)
        if owner != identity:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                "only the caller that asked may follow or cancel this answer",
                reason="NOT_ANSWER_OWNER",
                metadata={"answer_id": answer_id},
            )


async def _resumable(writer: _FeedWriter, leased: asyncio.Future[Any]) -> None:
    """Done once the answer is in the feed and leased, so that another server can record
    it as lost; an answer that could not be leased is taken out of the feed instead."""
    await writer.opened()
    if await leased is None:
        await writer.withdraw()


def _end_for_resumers(writer: _FeedWriter | None, sequence: int, ended: bool, reason: int) -> None:
    """Marks the end for resumers when the answer stopped without its `done` event."""
    if writer is None or ended:
        return
    writer.go_live()
    done = pb.StreamAnswerResponse(
        done=pb.AnswerDone(finish_reason=reason),  # type: ignore[arg-type]
        sequence=sequence + 1,
    )
    writer.add(FeedEvent(sequence + 1, done.SerializeToString(), True))


def _cancelled() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.CANCELLED, "the answer was cancelled", reason="ANSWER_CANCELLED"
    )


def _gone(answer_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        f"no answer {answer_id} is kept: it ended a while ago, or never existed; ask again",
        reason="ANSWER_NOT_FOUND",
        metadata={"answer_id": answer_id},
    )
