"""ChatService end to end: a real server, real PostgreSQL, and a fake OpenAI-compatible
model server on loopback that streams real SSE and fails on cue."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio

from chatbot.v1 import chat_service_pb2 as pb
from chatbot_client import AnswerStarted, ChatbotClient, SyncChatbotClient, TextDelta
from chatbot_client.errors import DeadlineExceededError
from chatbot_server.answers.fake_openai import Failure, FakeOpenAI, Reply
from tests.conftest import LogSink
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import upload_the_manual
from tests.polling import eventually
from tests.servers import RunningServer, server_settings, start_server

QUESTION = "Which port takes the DMX cable, and what does a blinking red LED mean?"


@pytest_asyncio.fixture(scope="module")
async def chat_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_chat")


@pytest_asyncio.fixture(scope="module")
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(scope="module")
async def chat_server(
    chat_database: MigratedDatabase, redis_url: str, fake_llm: FakeOpenAI
) -> AsyncIterator[RunningServer]:
    settings = server_settings(
        chat_database.app_url,
        redis_url,
        OPENROUTER_API_KEY="sk-or-test",
        OPENROUTER_BASE_URL=fake_llm.base_url,
        LLM_FIRST_TOKEN_TIMEOUT_SECONDS="1",
        HEARTBEAT_SECONDS="0.2",
        # Every chunk of the small manual is a source, so scripted replies may cite [1]-[3].
        SIMILARITY_THRESHOLD="0",
    )
    running = await start_server(settings)
    async with ChatbotClient(running.address) as client:
        await upload_the_manual(client)
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def client(chat_server: RunningServer, fake_llm: FakeOpenAI) -> AsyncIterator[ChatbotClient]:
    fake_llm.replies.clear()
    fake_llm.failures.clear()
    fake_llm.requests.clear()
    async with ChatbotClient(chat_server.address, timeout=30) as opened:
        yield opened


async def ask(
    client: ChatbotClient, question: str = QUESTION, **fields: object
) -> list[pb.StreamAnswerResponse]:
    request = pb.StreamAnswerRequest(question=question, **fields)  # type: ignore[arg-type]
    return [event async for event in client.chat.StreamAnswer(request, timeout=30)]


def kinds(events: list[pb.StreamAnswerResponse]) -> list[str]:
    return [str(event.WhichOneof("event")) for event in events]


def answer_text(events: list[pb.StreamAnswerResponse]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


def prompt_sources(fake: FakeOpenAI) -> dict[int, int]:
    """Source number -> page, as the model was shown them."""
    system = fake.requests[-1].json()["messages"][0]["content"]  # type: ignore[index]
    return {int(n): int(p) for n, p in re.findall(r"\[(\d+)\] [^\n]*?, page (\d+)", system)}


async def rows(database: MigratedDatabase, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database.owner_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_answer_streams_in_order_with_citations_matching_the_markers(
    client: ChatbotClient, fake_llm: FakeOpenAI, chat_database: MigratedDatabase
) -> None:
    fake_llm.replies.append(
        Reply(
            [
                "Connect the DMX cable to port 1 [",
                "3]. A blinking red LED",
                " means the fan stopped [1]. Again, port 1 [3].",
            ]
        )
    )
    events = await ask(client)
    order = kinds(events)
    assert order[0] == "started"
    assert order[-3:] == ["citations", "usage", "done"]
    assert set(order[1:-3]) == {"delta"}
    started = events[0].started
    assert started.model == "openai/gpt-4o-mini" and not started.offline

    text = answer_text(events)
    assert text == ("Connect the DMX cable to port 1 [1]. A blinking red LED means the fan "
                    "stopped [2]. Again, port 1 [1].")  # fmt: skip
    shown = prompt_sources(fake_llm)
    citations = events[-3].citations.citations
    assert [c.number for c in citations] == [1, 2]
    assert [c.page_number for c in citations] == [shown[3], shown[1]]
    stored = await rows(
        chat_database, "SELECT id, page_number, content FROM chunks WHERE id = ANY($1::uuid[])",
        [c.chunk_id for c in citations],
    )  # fmt: skip
    by_id = {str(r["id"]): r for r in stored}
    for citation in citations:
        assert by_id[citation.chunk_id]["page_number"] == citation.page_number
        assert citation.chunk_text == by_id[citation.chunk_id]["content"][:500]
        assert citation.document_title == "XPD-42 Manual"
        assert 0 < citation.relevance_score <= 1

    usage = events[-2].usage
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (120, 30)
    assert usage.usage.cost_usd == pytest.approx((120 * 0.15 + 30 * 0.60) / 1e6, abs=1e-6)
    assert usage.first_token_ms <= usage.total_ms
    assert events[-1].done.finish_reason == pb.FINISH_REASON_STOP

    (log,) = await rows(
        chat_database,
        "SELECT finish_reason, citation_count, prompt_tokens, cost_micro_usd, llm_model "
        "FROM answer_logs WHERE request_id = $1", started.request_id,
    )  # fmt: skip
    assert tuple(log) == ("stop", 2, 120, 36, "openai/gpt-4o-mini")


async def test_follow_up_question_sends_the_history(
    client: ChatbotClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.replies.append(Reply(["Port 1 [1]."]))
    first = await ask(client, "Where does the DMX cable go?", session_id="s-1")
    conversation_id = first[0].started.conversation_id
    fake_llm.replies.append(Reply(["Yes, on the rear panel [1]."]))
    await ask(client, "Is that on the back?", conversation_id=conversation_id, session_id="s-1")
    messages = fake_llm.requests[-1].json()["messages"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]  # type: ignore[index, union-attr]
    assert messages[1]["content"] == "Where does the DMX cable go?"  # type: ignore[index]
    assert messages[2]["content"] == "Port 1 [1]."  # type: ignore[index]

    conversation = await client.chat.GetConversation(
        pb.GetConversationRequest(conversation_id=conversation_id, session_id="s-1")
    )
    assert [m.role for m in conversation.messages] == [1, 2, 1, 2]
    assert len(conversation.messages[1].citations) == 1


async def test_rate_limits_before_the_first_token_are_retried(
    client: ChatbotClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.failures += [Failure(429, headers={"retry-after": "0"}), Failure(503)]
    fake_llm.replies.append(Reply(["Fine [1]."]))
    events = await ask(client)
    assert answer_text(events) == "Fine [1]."
    assert len([r for r in fake_llm.requests if r.path == "/v1/chat/completions"]) == 3


@pytest.mark.parametrize(
    ("failures", "reply", "code", "error_type"),
    [
        ([Failure(429, headers={"retry-after": "0"})] * 3, None,
         grpc.StatusCode.RESOURCE_EXHAUSTED, "LLM_RATE_LIMITED"),
        ([Failure(500)] * 3, None, grpc.StatusCode.UNAVAILABLE, "LLM_UNAVAILABLE"),
        ([], Reply(["late"], first_byte_delay=2.0), grpc.StatusCode.DEADLINE_EXCEEDED,
         "LLM_TIMEOUT"),
        ([], Reply(["Half ", "an ", "answer"], cut_after=2), grpc.StatusCode.UNAVAILABLE,
         "LLM_UNAVAILABLE"),
        ([], Reply(["Bad ", "chunk"], malformed_after=1), grpc.StatusCode.UNAVAILABLE,
         "LLM_UNAVAILABLE"),
    ],
    ids=["429", "500", "slow first byte", "cut stream", "malformed chunk"],
)  # fmt: skip
async def test_model_failures_end_the_stream_with_a_clean_status_and_are_logged(
    client: ChatbotClient,
    fake_llm: FakeOpenAI,
    chat_database: MigratedDatabase,
    failures: list[Failure],
    reply: Reply | None,
    code: grpc.StatusCode,
    error_type: str,
) -> None:
    fake_llm.failures += failures
    if reply is not None:
        fake_llm.replies.append(reply)
    events: list[pb.StreamAnswerResponse] = []
    call = client.chat.StreamAnswer(pb.StreamAnswerRequest(question=QUESTION), timeout=30)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for event in call:
            events.append(event)
    assert raised.value.code() == code
    assert events[0].WhichOneof("event") == "started"
    assert events[-1].done.finish_reason == pb.FINISH_REASON_ERROR
    assert events[-1].done.error.code == code.value[0]
    request_id = events[0].started.request_id
    (log,) = await rows(
        chat_database,
        "SELECT finish_reason, error_type, error_message FROM answer_logs WHERE request_id = $1",
        request_id,
    )
    assert (log["finish_reason"], log["error_type"]) == ("error", error_type)
    assert log["error_message"]
    if failures:
        # Refused before it took the request: the provider charged nothing, nor does the ledger.
        (cost,) = await rows(
            chat_database,
            "SELECT prompt_tokens, cost_micro_usd FROM answer_logs WHERE request_id = $1",
            request_id,
        )
        assert (cost["prompt_tokens"], cost["cost_micro_usd"]) == (0, 0)
    (message,) = await rows(
        chat_database, "SELECT status, content FROM messages WHERE request_id = $1 AND "
        "role = 'assistant'", request_id,
    )  # fmt: skip
    assert message["status"] == "failed"
    assert message["content"] == answer_text(events)


async def test_cancelling_mid_stream_stops_the_model_and_logs_partial_usage(
    client: ChatbotClient,
    fake_llm: FakeOpenAI,
    chat_database: MigratedDatabase,
    log_sink: LogSink,
) -> None:
    fake_llm.replies.append(Reply([f"word{n} " for n in range(50)], piece_delay=0.1))
    call = client.chat.StreamAnswer(pb.StreamAnswerRequest(question=QUESTION), timeout=30)
    started = await call.read()
    first = await call.read()
    while first.WhichOneof("event") != "delta":
        first = await call.read()
    call.cancel()
    request_id = started.started.request_id

    async def recorded() -> list[asyncpg.Record]:
        return await rows(
            chat_database,
            "SELECT l.finish_reason, l.prompt_tokens, l.completion_tokens, l.cost_micro_usd, "
            "m.status, m.content FROM answer_logs l "
            "JOIN messages m ON m.id = l.message_id WHERE l.request_id = $1",
            request_id,
        )

    for _ in range(100):
        found = await recorded()
        if found and fake_llm.disconnects:
            break
        await asyncio.sleep(0.1)
    (row,) = found
    assert (row["finish_reason"], row["status"]) == ("cancelled", "cancelled")
    assert row["content"].startswith("word0")
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["cost_micro_usd"] > 0
    assert fake_llm.disconnects >= 1
    finished = [e for e in log_sink.events("rpc.finished") if e.get("request_id") == request_id]
    assert [e["code"] for e in finished] == ["CANCELLED"]


async def test_quiet_model_gets_heartbeats_in_between(
    client: ChatbotClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.replies.append(Reply(["Slow ", "answer [1]."], first_byte_delay=0.5))
    order = kinds(await ask(client))
    assert "heartbeat" in order
    assert order.index("heartbeat") < order.index("delta")


async def test_the_callers_deadline_reaches_the_model_call_and_the_records(
    client: ChatbotClient,
    fake_llm: FakeOpenAI,
    chat_database: MigratedDatabase,
    log_sink: LogSink,
) -> None:
    fake_llm.replies.append(Reply(["too late"], first_byte_delay=0.8))
    call = client.chat.StreamAnswer(pb.StreamAnswerRequest(question=QUESTION), timeout=0.6)
    request_id = ""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for event in call:
            request_id = request_id or event.started.request_id
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    async def logged() -> list[asyncpg.Record]:
        return await rows(
            chat_database,
            "SELECT finish_reason, error_type FROM answer_logs WHERE request_id = $1",
            request_id,
        )

    (log,) = await eventually(logged)
    assert (log["finish_reason"], log["error_type"]) == ("error", "DEADLINE_EXCEEDED")
    finished = [e for e in log_sink.events("rpc.finished") if e.get("request_id") == request_id]
    assert [e["code"] for e in finished] == ["DEADLINE_EXCEEDED"]


async def test_conversations_belong_to_their_session(client: ChatbotClient) -> None:
    created = await client.chat.CreateConversation(
        pb.CreateConversationRequest(title="Mine", session_id="owner-session")
    )
    conversation_id = created.conversation.conversation_id
    for call in (client.chat.GetConversation, client.chat.DeleteConversation):
        request_type = pb.GetConversationRequest if call == client.chat.GetConversation else (
            pb.DeleteConversationRequest)  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request_type(conversation_id=conversation_id, session_id="intruder"))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await client.chat.ListConversations(
        pb.ListConversationsRequest(session_id="owner-session")
    )
    assert [c.title for c in listed.conversations] == ["Mine"]
    # Neither another session nor a caller giving no session sees it or its title.
    for other in ("intruder", ""):
        listed = await client.chat.ListConversations(pb.ListConversationsRequest(session_id=other))
        assert conversation_id not in [c.conversation_id for c in listed.conversations]
    await client.chat.DeleteConversation(
        pb.DeleteConversationRequest(conversation_id=conversation_id, session_id="owner-session")
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.chat.GetConversation(
            pb.GetConversationRequest(conversation_id=conversation_id, session_id="owner-session")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_feedback_is_one_per_answer_and_can_be_changed(
    client: ChatbotClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.replies.append(Reply(["Port 1 [1]."]))
    events = await ask(client, session_id="fb")
    answer_id = events[0].started.assistant_message_id
    first = await client.chat.SubmitFeedback(
        pb.SubmitFeedbackRequest(
            message_id=answer_id, rating=pb.FEEDBACK_RATING_POSITIVE, session_id="fb"
        )
    )
    second = await client.chat.SubmitFeedback(
        pb.SubmitFeedbackRequest(
            message_id=answer_id,
            rating=pb.FEEDBACK_RATING_NEGATIVE,
            comment="wrong port",
            session_id="fb",
        )
    )
    assert first.feedback.feedback_id == second.feedback.feedback_id
    assert (second.feedback.rating, second.feedback.comment) == (
        pb.FEEDBACK_RATING_NEGATIVE, "wrong port",
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.chat.SubmitFeedback(
            pb.SubmitFeedbackRequest(
                message_id=events[0].started.user_message_id,
                rating=pb.FEEDBACK_RATING_POSITIVE,
                session_id="fb",
            )
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.chat.SubmitFeedback(pb.SubmitFeedbackRequest(message_id=answer_id))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_answer_is_stored_before_done_is_sent(client: ChatbotClient) -> None:
    for _ in range(15):
        call = client.chat.StreamAnswer(pb.StreamAnswerRequest(question=QUESTION), timeout=30)
        answer_id = ""
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "started":
                answer_id = event.started.assistant_message_id
            elif kind == "done":
                # At once, as a front end showing rating buttons would.
                await client.chat.SubmitFeedback(
                    pb.SubmitFeedbackRequest(
                        message_id=answer_id, rating=pb.FEEDBACK_RATING_POSITIVE
                    )
                )


async def test_model_saying_not_in_documents_becomes_a_plain_not_found_without_citations(
    client: ChatbotClient, fake_llm: FakeOpenAI, chat_database: MigratedDatabase
) -> None:
    # The marker arrives split across chunks, with leading space, as models stream it.
    fake_llm.replies.append(Reply([" NOT_IN", "_DOCU", "MENTS"]))
    events = await ask(client, "Who won the football world cup in 2014?")
    assert answer_text(events) == "The documents do not answer this question."
    assert not events[-3].citations.citations
    done = events[-1].done
    assert done.grounding == pb.GROUNDING_NOT_FOUND
    system = fake_llm.requests[-1].json()["messages"][0]["content"]  # type: ignore[index]
    assert "reply with exactly NOT_IN_DOCUMENTS" in system
    logged = await rows(
        chat_database, "SELECT grounding FROM answer_logs WHERE request_id = $1",
        events[0].started.request_id,
    )  # fmt: skip
    assert [r["grounding"] for r in logged] == ["not_found"]


async def test_reply_that_only_starts_like_the_marker_streams_unchanged(
    client: ChatbotClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.replies.append(Reply(["NOT", " every port takes DMX; port 1 does [3]."]))
    events = await ask(client)
    assert answer_text(events) == "NOT every port takes DMX; port 1 does [1]."
    assert len(events[-3].citations.citations) == 1
    assert events[-1].done.grounding == pb.GROUNDING_ANSWERED


def _leave_each_answer_at_its_first_words(address: str, times: int) -> list[str]:
    """Asks `times` questions with the blocking client, leaving each loop at the first text."""
    request_ids = []
    with SyncChatbotClient(address) as blocking:
        for _ in range(times):
            for event in blocking.ask(QUESTION):
                if isinstance(event, AnswerStarted):
                    request_ids.append(event.request_id)
                if isinstance(event, TextDelta):
                    break
    return request_ids


async def test_leaving_the_blocking_clients_answer_loop_cancels_the_answer(
    chat_server: RunningServer, fake_llm: FakeOpenAI, chat_database: MigratedDatabase
) -> None:
    fake_llm.replies.clear()
    fake_llm.replies.extend(
        Reply([f"word{n} " for n in range(50)], piece_delay=0.1) for _ in range(3)
    )
    request_ids = await asyncio.to_thread(
        _leave_each_answer_at_its_first_words, chat_server.address, 3
    )

    async def recorded() -> list[asyncpg.Record]:
        found = await rows(
            chat_database,
            "SELECT finish_reason FROM answer_logs WHERE request_id = ANY($1::text[])",
            request_ids,
        )
        return found if len(found) == 3 else []

    assert [r["finish_reason"] for r in await eventually(recorded)] == ["cancelled"] * 3


async def test_a_per_method_default_deadline_applies_and_a_per_call_one_overrides_it(
    chat_server: RunningServer, fake_llm: FakeOpenAI
) -> None:
    fake_llm.replies.clear()
    fake_llm.replies.extend(Reply(["slow "] * 20, piece_delay=0.1) for _ in range(2))
    async with ChatbotClient(chat_server.address, deadlines={"StreamAnswer": 0.5}) as client:
        with pytest.raises(DeadlineExceededError):
            await client.answer(QUESTION)
        answer = await client.answer(QUESTION, timeout=30)
    assert answer.text.startswith("slow") and answer.finished is not None
    assert answer.finished.finish_reason == "stop"
