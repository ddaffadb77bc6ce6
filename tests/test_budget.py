"""The daily budget and the ledger, through gRPC: levels and alerts, refusals, reservations
that hold under concurrency, settlement however an answer ends, and reports that add up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2_grpc
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot_client import ChatbotClient
from chatbot_server.answers.fake_openai import Failure, FakeOpenAI, Reply
from chatbot_server.money.ledger_store import AnswerLogEntry, RequestFacts, record_call
from tests.alert_receivers import MailReceiver, WebhookReceiver
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import upload_the_manual
from tests.governance_support import app_pool, new_key, with_key
from tests.polling import eventually
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server

QUESTION = "What does a blinking red LED mean?"
# Each answer costs what the fake provider reports.
ANSWER_COST_USD = 0.01


@dataclass
class BudgetRig:
    database: MigratedDatabase
    fake: FakeOpenAI
    webhook: WebhookReceiver
    mail: MailReceiver
    servers: list[RunningServer]
    admin_secret: str


@pytest_asyncio.fixture(scope="module")
async def rig(postgres_superuser_url: str, redis_url: str) -> AsyncIterator[BudgetRig]:
    database = await create_test_database(postgres_superuser_url, "chatbot_budget")
    fake, webhook, mail = FakeOpenAI(), WebhookReceiver(), MailReceiver()
    await fake.start()
    await webhook.start()
    mail.start()
    settings = server_settings(
        database.app_url,
        redis_url,
        OPENROUTER_API_KEY="sk-or-test",
        OPENROUTER_BASE_URL=fake.base_url,
        LLM_MAX_RETRIES="0",
        SIMILARITY_THRESHOLD="0",
        DAILY_COST_BUDGET_USD="1",
        BUDGET_ALERT_THRESHOLD="0.8",
        BUDGET_ALERT_WEBHOOK_URL=webhook.url,
        BUDGET_ALERT_EMAIL="admins@example.test",
        SMTP_URL=mail.url,
    )
    # Two replicas of one service: the alert must go out once across both.
    servers = [await start_server(settings), await start_server(settings)]
    async with ChatbotClient(servers[0].address) as client:
        await upload_the_manual(client)
    _, admin_secret = await new_key(database.app_url, "budget-admin", "admin")
    yield BudgetRig(database, fake, webhook, mail, servers, admin_secret)
    for server in servers:
        await server.stop()
    await fake.stop()
    await webhook.stop()
    mail.stop()


@pytest_asyncio.fixture
async def budget(rig: BudgetRig) -> BudgetRig:
    """A day with nothing spent yet, and nothing scripted for the model."""
    async with app_pool(rig.database.app_url) as pool:
        await pool.execute("DELETE FROM answer_logs")
        await pool.execute("DELETE FROM budget_reservations")
        await pool.execute("DELETE FROM budget_days")
    rig.fake.replies.clear()
    rig.fake.failures.clear()
    rig.fake.report_cost = ANSWER_COST_USD
    rig.webhook.posts.clear()
    rig.mail.messages.clear()
    await asyncio.sleep(1.1)  # the chat gate trusts what it read for a second
    return rig


async def another_server(rig: BudgetRig, redis_url: str, **env: str) -> RunningServer:
    """One more replica on the rig's database and model, with settings of its own."""
    return await start_server(
        server_settings(
            rig.database.app_url,
            redis_url,
            OPENROUTER_API_KEY="sk-or-test",
            OPENROUTER_BASE_URL=rig.fake.base_url,
            SIMILARITY_THRESHOLD="0",
            **env,
        )
    )


async def seed_spend(rig: BudgetRig, usd: float) -> None:
    """Spending made elsewhere today, recorded as the ledger records every call."""
    async with app_pool(rig.database.app_url) as pool:
        await record_call(
            pool,
            AnswerLogEntry(
                RequestFacts("seed", "/chatbot.v1.ChatService/StreamAnswer", "seed"),
                llm_model="openai/gpt-4o-mini",
                cost_micro_usd=round(usd * 1_000_000),
                cost_source="provider",
            ),
        )


async def ask(
    server: RunningServer, metadata: tuple[tuple[str, str], ...] = ()
) -> list[chat_pb.StreamAnswerResponse]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = chat_service_pb2_grpc.ChatServiceStub(channel).StreamAnswer(
            chat_pb.StreamAnswerRequest(question=QUESTION), metadata=metadata, timeout=30
        )
        return [event async for event in call]


async def budget_status(rig: BudgetRig, api_key_id: str = "") -> admin_pb.GetBudgetStatusResponse:
    async with grpc.aio.insecure_channel(rig.servers[0].address) as channel:
        response: admin_pb.GetBudgetStatusResponse = await admin_service_pb2_grpc.AdminServiceStub(
            channel
        ).GetBudgetStatus(
            admin_pb.GetBudgetStatusRequest(api_key_id=api_key_id),
            metadata=with_key(rig.admin_secret),
            timeout=5,
        )
        return response


async def ledger_and_budget(rig: BudgetRig) -> tuple[int, int, int]:
    """The ledger's sum, the budget's spent figure, and open reservations, in micro-USD."""
    conn = await asyncpg.connect(rig.database.app_url)
    try:
        ledger = await conn.fetchval("SELECT coalesce(sum(cost_micro_usd), 0) FROM answer_logs")
        spent = await conn.fetchval(
            "SELECT coalesce(sum(spent_micro_usd), 0) FROM budget_days WHERE scope = 'global'"
        )
        reserved = await conn.fetchval("SELECT count(*) FROM budget_reservations")
    finally:
        await conn.close()
    return int(ledger), int(spent), int(reserved)


async def test_budget_levels_alert_once_across_replicas_then_refuse(budget: BudgetRig) -> None:
    first, second = budget.servers
    await seed_spend(budget, 0.78)
    await ask(first)  # 0.79: still normal
    assert (await budget_status(budget)).budget.level == admin_pb.BUDGET_LEVEL_NORMAL
    await first.resources.budget.drain()
    assert budget.webhook.posts == [] and budget.mail.messages == []

    await ask(first)  # 0.80: the threshold
    await ask(second)  # 0.81: the other replica crosses it too
    for server in budget.servers:
        await server.resources.budget.drain()
    status = (await budget_status(budget)).budget
    assert status.level == admin_pb.BUDGET_LEVEL_WARNING
    assert status.spent_usd == pytest.approx(0.81)
    (post,) = budget.webhook.posts
    assert post["budget_usd"] == 1.0 and post["used_percent"] >= 80
    (mail,) = budget.mail.messages
    assert mail["To"] == "admins@example.test"
    assert "of the daily budget spent" in mail["Subject"]

    await seed_spend(budget, 0.19)  # 1.00: spent
    await asyncio.sleep(1.1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ask(second)
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert info.reason == "DAILY_BUDGET_EXCEEDED"
    assert float(info.metadata["spent_usd"]) == pytest.approx(1.0)
    assert float(info.metadata["budget_usd"]) == 1.0
    assert float(info.metadata["used_percent"]) == 100.0
    assert info.metadata["reset_time"].endswith("T00:00:00Z")
    assert (await budget_status(budget)).budget.level == admin_pb.BUDGET_LEVEL_BLOCKED


async def test_concurrent_answers_never_overrun_a_key_budget(budget: BudgetRig) -> None:
    # Measure one answer's worst case as the service reserves it.
    budget.fake.replies.append(Reply(["Slow [1]."], first_byte_delay=1.0))
    measuring = asyncio.create_task(ask(budget.servers[0]))

    async def reservation() -> int:
        conn = await asyncpg.connect(budget.database.app_url)
        try:
            return int(
                await conn.fetchval("SELECT coalesce(max(micro_usd), 0) FROM budget_reservations")
            )
        finally:
            await conn.close()

    worst_case = await eventually(reservation)
    await measuring
    key_id, secret = await new_key(
        budget.database.app_url, "five-answers", "client", daily_budget_usd=5.5 * worst_case / 1e6
    )
    budget.fake.report_cost = None  # charged from the pricing table, below the worst case
    budget.fake.replies.extend(Reply(["Slow [1]."], first_byte_delay=1.5) for _ in range(30))

    async def attempt(server: RunningServer) -> bool:
        try:
            await ask(server, with_key(secret))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(error).reason == "KEY_BUDGET_EXCEEDED"
            return False
        return True

    outcomes = await asyncio.gather(*(attempt(s) for s in budget.servers * 15))
    assert 1 <= sum(outcomes) <= 5
    key_status = (await budget_status(budget, key_id)).key_budget
    assert key_status.spent_usd <= key_status.budget_usd
    assert key_status.reserved_usd == 0
    ledger, spent, reserved = await ledger_and_budget(budget)
    assert (ledger, reserved) == (spent, 0)


async def test_cancelled_and_failed_answers_settle_their_reservations(budget: BudgetRig) -> None:
    server = budget.servers[0]
    budget.fake.replies.append(Reply(["one ", "two ", "three"] * 20, piece_delay=0.05))
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = chat_service_pb2_grpc.ChatServiceStub(channel).StreamAnswer(
            chat_pb.StreamAnswerRequest(question=QUESTION), timeout=30
        )
        async for event in call:
            if event.WhichOneof("event") == "delta":
                call.cancel()
                break
    budget.fake.failures.append(Failure(400, '{"error": {"message": "bad model"}}'))
    with pytest.raises(grpc.aio.AioRpcError):
        await ask(server)

    async def settled() -> bool:
        async with app_pool(budget.database.app_url) as pool:
            finishes = await pool.fetch("SELECT finish_reason FROM answer_logs")
        return sorted(row["finish_reason"] for row in finishes) == ["cancelled", "error"]

    await eventually(settled)
    ledger, spent, reserved = await ledger_and_budget(budget)
    assert reserved == 0
    assert ledger == spent


async def test_cost_report_adds_up_to_the_ledger_rows(budget: BudgetRig) -> None:
    await seed_spend(budget, 0.05)
    for _ in range(3):
        await ask(budget.servers[0])
    async with grpc.aio.insecure_channel(budget.servers[1].address) as channel:
        report = await admin_service_pb2_grpc.AdminServiceStub(channel).GetCostReport(
            admin_pb.GetCostReportRequest(days=7), metadata=with_key(budget.admin_secret), timeout=5
        )
    ledger, spent, _ = await ledger_and_budget(budget)
    assert report.total.cost_usd == pytest.approx(ledger / 1e6, abs=1e-9)
    assert report.total.request_count == 4
    assert sum(b.cost_usd for b in report.by_model) == pytest.approx(report.total.cost_usd)
    assert sum(b.request_count for b in report.by_method) == 4
    assert len(report.by_day) == 7
    assert report.by_day[-1].cost_usd == pytest.approx(report.total.cost_usd)
    assert report.budget.spent_usd == pytest.approx(spent / 1e6)
    assert report.total.cost_per_request_usd == pytest.approx(report.total.cost_usd / 4)


async def test_an_exhausted_budget_can_answer_offline_instead(
    budget: BudgetRig, redis_url: str
) -> None:
    await seed_spend(budget, 1.0)
    running = await another_server(
        budget, redis_url, DAILY_COST_BUDGET_USD="1", BUDGET_EXHAUSTED_ACTION="offline"
    )
    requests_before = len(budget.fake.requests)
    try:
        events = await ask(running)
    finally:
        await running.stop()
    started, done = events[0].started, events[-1].done
    assert started.offline and started.model == ""
    assert done.finish_reason == chat_pb.FINISH_REASON_STOP
    assert any("budget" in warning and "offline" in warning for warning in done.warnings)
    usage = next(e.usage for e in events if e.WhichOneof("event") == "usage")
    assert usage.usage.cost_usd == 0
    assert len(budget.fake.requests) == requests_before  # the model was never called
    async with grpc.aio.insecure_channel(budget.servers[1].address) as channel:
        report = await admin_service_pb2_grpc.AdminServiceStub(channel).GetCostReport(
            admin_pb.GetCostReportRequest(days=1), metadata=with_key(budget.admin_secret), timeout=5
        )
    # Named as offline, not after the embedding model that found its passages.
    offline = [b for b in report.by_model if b.key == "offline"]
    assert len(offline) == 1 and offline[0].request_count >= 1 and offline[0].cost_usd == 0
    assert not [b for b in report.by_model if b.key.startswith("use-")]


async def test_stopping_the_server_mid_answer_records_and_settles_it(
    budget: BudgetRig, redis_url: str
) -> None:
    running = await another_server(budget, redis_url)
    budget.fake.replies.append(Reply(["slow "] * 100, piece_delay=0.1))
    async with grpc.aio.insecure_channel(running.address) as channel:
        call = chat_service_pb2_grpc.ChatServiceStub(channel).StreamAnswer(
            chat_pb.StreamAnswerRequest(question=QUESTION), timeout=30
        )
        async for event in call:
            if event.WhichOneof("event") == "delta":
                break
        # As on SIGTERM: a short grace, then the pool closes right after the stop.
        await running.stop(grace_seconds=0.2)

    async with app_pool(budget.database.app_url) as pool:
        row = await pool.fetchrow("SELECT * FROM answer_logs WHERE method LIKE '%StreamAnswer'")
        message = await pool.fetchrow("SELECT * FROM messages WHERE id = $1", row["message_id"])
    assert row["finish_reason"] == "cancelled"
    assert message["status"] == "cancelled" and message["content"].startswith("slow")
    ledger, spent, reserved = await ledger_and_budget(budget)
    assert (ledger, reserved) == (spent, 0)
