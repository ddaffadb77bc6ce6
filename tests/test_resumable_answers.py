"""Answers that survive a dropped connection: numbered events, ResumeAnswer on another
server, CancelAnswer from anywhere, and one message and one ledger row whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio

from chatbot.v1 import chat_service_pb2 as pb
from chatbot.v1.chat_service_pb2_grpc import ChatServiceStub
from chatbot_client import Answer, AnswerStarted, ChatbotClient, TextDelta
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import upload_the_manual
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server
from tests.tcp_proxy import CuttableProxy

PIECES = [f"word{n} " for n in range(12)]
RESUME_SECONDS = 2


@dataclass
class Pair:
    """Two servers sharing one database and one Redis, as replicas do."""

    first: RunningServer
    second: RunningServer
    fake: FakeOpenAI
    database: MigratedDatabase


@pytest_asyncio.fixture(scope="module")
async def pair(postgres_superuser_url: str, redis_url: str) -> AsyncIterator[Pair]:
    database = await create_test_database(postgres_superuser_url, "chatbot_resume")
    fake = FakeOpenAI()
    await fake.start()
    env = {
        "OPENROUTER_API_KEY": "sk-or-test",
        "OPENROUTER_BASE_URL": fake.base_url,
        "SIMILARITY_THRESHOLD": "0",
        "ANSWER_RESUME_SECONDS": str(RESUME_SECONDS),
        # The shortest lease: answers here outlast several, so renewals must keep them.
        "ANSWER_LEASE_SECONDS": "1",
    }
    first = await start_server(server_settings(database.app_url, redis_url, **env))
    second = await start_server(server_settings(database.app_url, redis_url, **env))
    async with ChatbotClient(first.address) as client:
        await upload_the_manual(client)
    yield Pair(first, second, fake, database)
    await first.stop()
    await second.stop()
    await fake.stop()


def as_client(address: str) -> tuple[tuple[str, str], ...]:
    """Calls as an anonymous browser at `address`, forwarded by a trusted proxy."""
    return (("x-forwarded-for", address),)


async def rest_of(call: grpc.aio.UnaryStreamCall) -> list[pb.StreamAnswerResponse]:
    """Every message still to come, read as `read_until_deltas` reads (the two styles of
    reading cannot be mixed on one call)."""
    received = []
    while (message := await call.read()) is not grpc.aio.EOF:
        received.append(message)
    return received


async def read_until_deltas(
    call: grpc.aio.UnaryStreamCall, deltas: int
) -> list[pb.StreamAnswerResponse]:
    received: list[pb.StreamAnswerResponse] = []
    while sum(m.WhichOneof("event") == "delta" for m in received) < deltas:
        received.append(await call.read())
    return received


def text_of(messages: list[pb.StreamAnswerResponse]) -> str:
    return "".join(m.delta.text for m in messages if m.WhichOneof("event") == "delta")


async def ledger_rows(database: MigratedDatabase, answer_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database.owner_url)
    try:
        for _ in range(100):
            rows = await conn.fetch(
                "SELECT finish_reason FROM answer_logs WHERE message_id = $1", answer_id
            )
            if rows:
                return list(rows)
            await asyncio.sleep(0.1)
        return []
    finally:
        await conn.close()


async def test_events_are_numbered_and_started_names_the_answer(pair: Pair) -> None:
    pair.fake.replies = [Reply(PIECES)]
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        call = ChatServiceStub(channel).StreamAnswer(pb.StreamAnswerRequest(question="LED?"))
        messages = [message async for message in call]
    assert [m.sequence for m in messages] == list(range(1, len(messages) + 1))
    started = messages[0].started
    assert started.answer_id == started.assistant_message_id != ""
    assert messages[-1].done.finish_reason == pb.FINISH_REASON_STOP


async def test_a_dropped_caller_resumes_on_another_server_and_misses_nothing(
    pair: Pair,
) -> None:
    pair.fake.replies = [Reply(PIECES, piece_delay=0.15)]
    who = as_client("203.0.113.21")
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        call = ChatServiceStub(channel).StreamAnswer(
            pb.StreamAnswerRequest(question="What does a blinking red LED mean?"), metadata=who
        )
        before = await read_until_deltas(call, 3)
        call.cancel()
    answer_id = before[0].started.answer_id

    async with grpc.aio.insecure_channel(pair.second.address) as channel:
        resumed = ChatServiceStub(channel).ResumeAnswer(
            pb.ResumeAnswerRequest(answer_id=answer_id, after_sequence=before[-1].sequence),
            metadata=who,
        )
        after = [message async for message in resumed]

    sequences = [m.sequence for m in before + after]
    assert sequences == list(range(1, len(sequences) + 1))
    assert text_of(before + after) == "".join(PIECES)
    assert after[-1].done.finish_reason == pb.FINISH_REASON_STOP
    assert [row["finish_reason"] for row in await ledger_rows(pair.database, answer_id)] == ["stop"]


async def test_an_answer_that_outlasts_its_lease_is_renewed_not_lost(pair: Pair) -> None:
    pair.fake.replies = [Reply(PIECES, piece_delay=0.3)]
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        call = ChatServiceStub(channel).StreamAnswer(pb.StreamAnswerRequest(question="LED?"))
        messages = [message async for message in call]
    assert text_of(messages) == "".join(PIECES)
    answer_id = messages[0].started.answer_id
    assert [row["finish_reason"] for row in await ledger_rows(pair.database, answer_id)] == ["stop"]


async def test_a_resume_by_another_caller_is_refused(pair: Pair) -> None:
    pair.fake.replies = [Reply(PIECES, piece_delay=0.05)]
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        stub = ChatServiceStub(channel)
        call = stub.StreamAnswer(
            pb.StreamAnswerRequest(question="LED?"), metadata=as_client("203.0.113.31")
        )
        started = (await call.read()).started
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            other = stub.ResumeAnswer(
                pb.ResumeAnswerRequest(answer_id=started.answer_id),
                metadata=as_client("203.0.113.32"),
            )
            await other.read()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(refused.value).reason == "NOT_ANSWER_OWNER"
        assert (await rest_of(call))[-1].done.finish_reason == pb.FINISH_REASON_STOP


async def test_an_answer_nobody_resumes_is_cancelled_and_recorded(pair: Pair) -> None:
    pair.fake.replies = [Reply([f"slow{n} " for n in range(60)], piece_delay=0.2)]
    who = as_client("203.0.113.41")
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        stub = ChatServiceStub(channel)
        call = stub.StreamAnswer(pb.StreamAnswerRequest(question="LED?"), metadata=who)
        answer_id = (await read_until_deltas(call, 1))[0].started.answer_id
        call.cancel()
        rows = await ledger_rows(pair.database, answer_id)
        assert [row["finish_reason"] for row in rows] == ["cancelled"]

        replay = stub.ResumeAnswer(pb.ResumeAnswerRequest(answer_id=answer_id), metadata=who)
        events = [message async for message in replay]
    assert events[0].started.answer_id == answer_id
    assert events[-1].done.finish_reason == pb.FINISH_REASON_CANCELLED


async def test_cancel_answer_stops_it_from_another_server(pair: Pair) -> None:
    pair.fake.replies = [Reply([f"long{n} " for n in range(60)], piece_delay=0.2)]
    who = as_client("203.0.113.51")
    async with (
        grpc.aio.insecure_channel(pair.first.address) as first,
        grpc.aio.insecure_channel(pair.second.address) as second,
    ):
        call = ChatServiceStub(first).StreamAnswer(
            pb.StreamAnswerRequest(question="LED?"), metadata=who
        )
        answer_id = (await read_until_deltas(call, 1))[0].started.answer_id
        response = await ChatServiceStub(second).CancelAnswer(
            pb.CancelAnswerRequest(answer_id=answer_id), metadata=who
        )
        assert response.cancelled
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await rest_of(call)
        assert ended.value.code() == grpc.StatusCode.CANCELLED
    assert [row["finish_reason"] for row in await ledger_rows(pair.database, answer_id)] == [
        "cancelled"
    ]


async def test_cancel_answer_of_an_answer_that_ended_says_it_was_not_cancelled(
    pair: Pair,
) -> None:
    pair.fake.replies = [Reply(PIECES)]
    who = as_client("203.0.113.52")
    async with grpc.aio.insecure_channel(pair.first.address) as channel:
        stub = ChatServiceStub(channel)
        call = stub.StreamAnswer(pb.StreamAnswerRequest(question="LED?"), metadata=who)
        messages = [message async for message in call]
        assert messages[-1].done.finish_reason == pb.FINISH_REASON_STOP
        response = await stub.CancelAnswer(
            pb.CancelAnswerRequest(answer_id=messages[0].started.answer_id), metadata=who
        )
    assert not response.cancelled


async def test_without_redis_an_answer_resumes_on_the_same_server(pair: Pair) -> None:
    fake = FakeOpenAI()
    await fake.start()
    running = await start_server(
        server_settings(
            pair.database.app_url,
            None,
            OPENROUTER_API_KEY="sk-or-test",
            OPENROUTER_BASE_URL=fake.base_url,
            SIMILARITY_THRESHOLD="0",
            ANSWER_RESUME_SECONDS="5",
        )
    )
    fake.replies = [Reply(PIECES, piece_delay=0.1)]
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = ChatServiceStub(channel)
            call = stub.StreamAnswer(pb.StreamAnswerRequest(question="LED?"))
            before = await read_until_deltas(call, 2)
            call.cancel()
            resumed = stub.ResumeAnswer(
                pb.ResumeAnswerRequest(
                    answer_id=before[0].started.answer_id, after_sequence=before[-1].sequence
                )
            )
            after = [message async for message in resumed]
    finally:
        await running.stop()
        await fake.stop()
    assert text_of(before + after) == "".join(PIECES)
    assert after[-1].done.finish_reason == pb.FINISH_REASON_STOP


async def test_the_python_client_resumes_after_a_blip_on_another_server(pair: Pair) -> None:
    pair.fake.replies = [Reply(PIECES, piece_delay=0.15)]
    proxy = CuttableProxy(pair.first.address)
    await proxy.start()
    events = []
    try:
        async with ChatbotClient(proxy.address, timeout=60) as client:
            async for event in client.ask("What does a blinking red LED mean?"):
                events.append(event)
                if sum(isinstance(e, TextDelta) for e in events) == 3:
                    # The next connection lands on the other replica.
                    proxy.target = pair.second.address
                    proxy.cut()
    finally:
        await proxy.stop()
    answer = Answer.from_events(events)
    assert answer.text == "".join(PIECES)
    assert answer.finished is not None
    assert answer.finished.finish_reason == "stop"
    started = events[0]
    assert isinstance(started, AnswerStarted)
    assert [
        row["finish_reason"] for row in await ledger_rows(pair.database, started.answer_id)
    ] == ["stop"]


async def test_an_answer_that_could_not_be_leased_is_not_offered_for_resume(
    postgres_superuser_url: str, redis_url: str
) -> None:
    # No server could record such an answer as lost should its own die, so none may follow
    # it: a resume is NOT_FOUND at once and the answer stops when its caller leaves.
    database = await create_test_database(postgres_superuser_url, "chatbot_unleased")
    conn = await asyncpg.connect(database.owner_url)
    try:
        await conn.execute(f"REVOKE INSERT ON answer_leases FROM {database.app_role}")
    finally:
        await conn.close()
    fake = FakeOpenAI()
    await fake.start()
    running = await start_server(
        server_settings(
            database.app_url,
            redis_url,
            OPENROUTER_API_KEY="sk-or-test",
            OPENROUTER_BASE_URL=fake.base_url,
            SIMILARITY_THRESHOLD="0",
            ANSWER_RESUME_SECONDS="30",
        )
    )
    fake.replies = [Reply([f"slow{n} " for n in range(60)], piece_delay=0.2)]
    try:
        async with ChatbotClient(running.address) as client:
            await upload_the_manual(client)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = ChatServiceStub(channel)
            call = stub.StreamAnswer(pb.StreamAnswerRequest(question="LED?"))
            answer_id = (await read_until_deltas(call, 1))[0].started.answer_id
            call.cancel()
            resumed = stub.ResumeAnswer(pb.ResumeAnswerRequest(answer_id=answer_id))
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await resumed.read()
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(raised.value).reason == "ANSWER_NOT_FOUND"
            # Well within the 30 s a resumable answer would wait.
            rows = await ledger_rows(database, answer_id)
            assert [row["finish_reason"] for row in rows] == ["cancelled"]
    finally:
        await running.stop()
        await fake.stop()
