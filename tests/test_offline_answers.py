"""With no API key the server still answers, from the retrieved text, and says so."""

from __future__ import annotations

import asyncpg

from chatbot.v1 import chat_service_pb2 as pb
from chatbot_client import ChatbotClient
from tests.conftest import LogSink
from tests.databases import MigratedDatabase
from tests.documents_support import truncate_documents, upload_the_manual
from tests.polling import eventually
from tests.servers import RunningServer


async def test_offline_answer_quotes_the_best_passages_with_citations(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        await upload_the_manual(client)
        events = [
            e
            async for e in client.chat.StreamAnswer(
                pb.StreamAnswerRequest(question="What does a blinking red status LED mean?")
            )
        ]
    started, done = events[0].started, events[-1].done
    assert started.offline and started.model == ""
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert "blinks red" in text
    citations = next(e for e in events if e.WhichOneof("event") == "citations").citations.citations
    assert citations[0].page_number == 3
    assert f"[{len(citations)}]" in text
    assert any("offline" in warning for warning in done.warnings)
    assert done.grounding == pb.GROUNDING_ANSWERED
    usage = next(e for e in events if e.WhichOneof("event") == "usage").usage
    assert usage.usage.cost_usd == 0


async def test_offline_answer_says_when_nothing_matches(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        events = [
            e async for e in client.chat.StreamAnswer(pb.StreamAnswerRequest(question="Anything?"))
        ]
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert text == "The documents do not answer this question."
    assert events[-1].done.grounding == pb.GROUNDING_NOT_FOUND
    assert "no document matched the question" in events[-1].done.warnings


async def test_a_call_cancelled_right_after_started_is_recorded_as_cancelled(
    server: RunningServer, database: MigratedDatabase, log_sink: LogSink
) -> None:
    await truncate_documents(database.owner_url)
    # Retrieval waits on a lock the test holds, so the answer (offline, made at once
    # otherwise) cannot end before the cancel arrives.
    locker = await asyncpg.connect(database.owner_url)
    lock = locker.transaction()
    await lock.start()
    try:
        async with ChatbotClient(server.address) as client:
            await upload_the_manual(client)
            await locker.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
            call = client.chat.StreamAnswer(
                pb.StreamAnswerRequest(
                    question="What does a blinking red status LED mean?", language="en"
                )
            )
            started = (await call.read()).started
            call.cancel()

        async def finished() -> list[dict[str, object]]:
            return [
                e
                for e in log_sink.events("answer.finished")
                if e.get("request_id") == started.request_id
            ]

        assert [e["finish_reason"] for e in await eventually(finished)] == ["cancelled"]
    finally:
        await lock.rollback()
        await locker.close()
    conn = await asyncpg.connect(database.owner_url)
    try:
        row = await conn.fetchrow(
            "SELECT finish_reason, grounding FROM answer_logs WHERE request_id = $1",
            started.request_id,
        )
    finally:
        await conn.close()
    assert row is not None and (row["finish_reason"], row["grounding"]) == (
        "cancelled",
        "unspecified",
    )
