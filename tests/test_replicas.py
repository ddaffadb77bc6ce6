"""Three server processes behind the edge, sharing one PostgreSQL and one Redis, as
replicas run: calls spread over all three, an answer resumes on another replica, a replica
stopped with SIGTERM drains while the others serve, one paused past its answer's lease has
that answer recorded once, by another, and one killed with SIGKILL leaves no answer in
flight, with the budget still equal to the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio

from chatbot.v1 import document_service_pb2 as documents_pb
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from chatbot_client import AnswerFinished, AnswerStarted, ChatbotClient, TextDelta
from chatbot_client.errors import ChatbotError
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from tests.databases import MigratedDatabase, create_test_database, free_port
from tests.documents_support import upload_the_manual
from tests.edge_support import running_edge
from tests.governance_support import new_key, with_key
from tests.processes import ServerProcess
from tests.tcp_proxy import CuttableProxy

PIECES = [f"word{n} " for n in range(12)]
LONG_PIECES = [f"long{n} " for n in range(30)]
LEASE_SECONDS = 10


@dataclass
class Cluster:
    replicas: list[ServerProcess]
    edge: str
    fake: FakeOpenAI
    database: MigratedDatabase

    def complaints(self) -> list[dict[str, object]]:
        """The replicas' warnings and errors, last ones first: what a failure shows."""
        found = [
            {"replica": number, **event}
            for number, replica in enumerate(self.replicas)
            for event in replica.events
            if event.get("level") in ("warning", "error")
        ]
        return found[::-1][:40]

    def served(self, request_id: str, method: str) -> list[int]:
        """Which replicas logged the call with this request id to this method."""
        return [
            number
            for number, replica in enumerate(self.replicas)
            for event in replica.events
            if event.get("event") == "rpc.finished"
            and event.get("request_id") == request_id
            and str(event.get("method", "")).endswith(method)
        ]


@pytest_asyncio.fixture(scope="module")
async def cluster(postgres_superuser_url: str, redis_url: str) -> AsyncIterator[Cluster]:
    database = await create_test_database(postgres_superuser_url, "chatbot_replicas")
    fake = FakeOpenAI()
    await fake.start()
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    env = {
        "DATABASE_URL": database.app_url,
        "REDIS_URL": redis_url,
        "OPENROUTER_API_KEY": "sk-or-test",
        "OPENROUTER_BASE_URL": fake.base_url,
        "SIMILARITY_THRESHOLD": "0",
        "ANSWER_RESUME_SECONDS": "10",
        "ANSWER_LEASE_SECONDS": str(LEASE_SECONDS),
        "SHUTDOWN_GRACE_SECONDS": "20",
        # The edge checks every 2 s and takes a server out after two failed checks.
        "SHUTDOWN_DRAIN_SECONDS": "5",
        "HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
        "API_KEY_CACHE_SECONDS": "0",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_ANONYMOUS": "100000/minute",
        "RATE_LIMIT_AUTHENTICATED": "100000/minute",
        "RATE_LIMIT_CHAT": "100000/minute",
        "RATE_LIMIT_BURST": "100000/second",
        "LOG_LEVEL": "INFO",
    }
    # As deployed: the servers only serve, and a worker process ingests.
    replicas = [
        ServerProcess({**env, "GRPC_ADDRESS": address, "INGESTION_WORKERS": "0"})
        for address in addresses
    ]
    worker = ServerProcess(env, "worker")
    await asyncio.gather(*(process.start() for process in [*replicas, worker]))
    try:
        await asyncio.gather(*(replica.wait_for_event("server.started") for replica in replicas))
        async with running_edge(addresses) as base_url:
            edge = base_url.removeprefix("http://")
            async with ChatbotClient(edge) as client:
                await upload_the_manual(client)
            ready = Cluster(replicas, edge, fake, database)
            await every_replica_in_rotation(ready)
            yield ready
    finally:
        await asyncio.gather(*(process.kill() for process in [*replicas, worker]))
        await fake.stop()


def request_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def list_documents_through_the_edge(cluster: Cluster, calls: int) -> Counter[int]:
    """Makes the calls one after another on one connection; how many each replica served."""
    ids = [request_id() for _ in range(calls)]
    async with grpc.aio.insecure_channel(cluster.edge) as channel:
        documents = DocumentServiceStub(channel)
        for rid in ids:
            await documents.ListDocuments(
                documents_pb.ListDocumentsRequest(), metadata=[("x-request-id", rid)]
            )
    await asyncio.sleep(0.3)
    return Counter(number for rid in ids for number in cluster.served(rid, "ListDocuments"))


async def every_replica_in_rotation(cluster: Cluster) -> None:
    """Waits until the edge's health checks have found every replica serving."""
    for _ in range(40):
        if len(await list_documents_through_the_edge(cluster, 6)) == len(cluster.replicas):
            return
        await asyncio.sleep(0.25)
    raise AssertionError("the edge never sent calls to every replica")


async def test_calls_through_the_edge_reach_every_replica_in_turn(cluster: Cluster) -> None:
    assert await list_documents_through_the_edge(cluster, 30) == {0: 10, 1: 10, 2: 10}


async def ask_through_a_blip(cluster: Cluster, rid: str) -> list[object]:
    """Asks through a proxy in front of the edge that drops the connection after the third
    delta; the client resumes through the edge. Every event the client saw."""
    cluster.fake.replies.append(Reply(PIECES, piece_delay=0.1))
    proxy = CuttableProxy(cluster.edge)
    await proxy.start()
    events: list[object] = []
    try:
        async with ChatbotClient(proxy.address, metadata=[("x-request-id", rid)]) as client:
            async for event in client.ask("What does a blinking red LED mean?", timeout=60):
                events.append(event)
                if sum(isinstance(e, TextDelta) for e in events) == 3:
                    proxy.cut()
    finally:
        await proxy.stop()
    return events


async def test_a_dropped_client_resumes_on_another_replica_through_the_edge(
    cluster: Cluster,
) -> None:
    # The edge balances each call anew: try until the resume lands elsewhere (one in
    # three lands on the same replica).
    for _ in range(8):
        rid = request_id()
        events = await ask_through_a_blip(cluster, rid)
        texts = [event.text for event in events if isinstance(event, TextDelta)]
        assert texts == PIECES, texts
        finished = [event for event in events if isinstance(event, AnswerFinished)]
        assert [event.finish_reason for event in finished] == ["stop"]
        await asyncio.sleep(0.5)
        asked, resumed = cluster.served(rid, "StreamAnswer"), cluster.served(rid, "ResumeAnswer")
        assert len(asked) == 1 and len(resumed) == 1, (asked, resumed)
        if asked != resumed:
            break
    else:
        raise AssertionError("every resume landed on the replica that was asked")


async def test_a_resume_by_another_identity_is_refused_through_the_edge(cluster: Cluster) -> None:
    _, owner = await new_key(cluster.database.app_url, "replicas-owner", "client")
    _, other = await new_key(cluster.database.app_url, "replicas-other", "client")
    cluster.fake.replies.append(Reply(PIECES, piece_delay=0.1))
    async with (
        ChatbotClient(cluster.edge, metadata=with_key(owner)) as asker,
        ChatbotClient(cluster.edge, metadata=with_key(other)) as stranger,
    ):
        answer_id = ""
        async for event in asker.ask("What does a blinking red LED mean?", timeout=60):
            if isinstance(event, AnswerStarted):
                answer_id = event.answer_id
            if isinstance(event, TextDelta):
                with pytest.raises(ChatbotError) as refused:
                    async for _ in stranger.resume_answer(answer_id):
                        pass
                assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
                assert refused.value.reason == "NOT_ANSWER_OWNER"
                break


async def test_rate_limits_stay_exact_across_the_replicas(cluster: Cluster) -> None:
    _, secret = await new_key(cluster.database.app_url, "replicas-limited", "client",
                              rate_limit="30/minute")  # fmt: skip
    ids = [request_id() for _ in range(45)]
    codes = []
    async with grpc.aio.insecure_channel(cluster.edge) as channel:
        documents = DocumentServiceStub(channel)
        for rid in ids:
            try:
                await documents.ListDocuments(
                    documents_pb.ListDocumentsRequest(),
                    metadata=[*with_key(secret), ("x-request-id", rid)],
                )
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
    assert Counter(codes) == {grpc.StatusCode.OK: 30, grpc.StatusCode.RESOURCE_EXHAUSTED: 15}
    await asyncio.sleep(0.5)
    served = Counter(number for rid in ids[:30] for number in cluster.served(rid, "ListDocuments"))
    assert len(served) == 3, served


async def ledger_matches_budget(conn: asyncpg.Connection) -> None:
    ledger = await conn.fetchval("SELECT coalesce(sum(cost_micro_usd), 0) FROM answer_logs")
    budget = await conn.fetchval(
        "SELECT coalesce(sum(spent_micro_usd), 0) FROM budget_days WHERE scope = 'global'"
    )
    assert ledger == budget and ledger > 0


async def test_a_replica_paused_past_its_lease_is_recorded_once_by_another(
    cluster: Cluster,
) -> None:
    paused = cluster.replicas[0]
    assert paused.process is not None
    cluster.fake.replies.append(Reply(PIECES, piece_delay=0.3))
    answer_id, deltas = "", 0
    async with ChatbotClient(paused.env["GRPC_ADDRESS"], timeout=60) as client:
        async for event in client.ask("What does a blinking red LED mean?"):
            if isinstance(event, AnswerStarted):
                answer_id = event.answer_id
            deltas += isinstance(event, TextDelta)
            if deltas == 2:
                paused.process.send_signal(signal.SIGSTOP)
                break
    conn = await asyncpg.connect(cluster.database.app_url)
    try:
        rows: list[asyncpg.Record] = []
        try:
            # The lease runs out, and another replica looks every third of it: 30 s at most.
            for _ in range(60):
                rows = await conn.fetch(
                    "SELECT finish_reason, error_type FROM answer_logs WHERE message_id = $1",
                    uuid.UUID(answer_id),
                )
                if rows:
                    break
                await asyncio.sleep(0.5)
        finally:
            paused.process.send_signal(signal.SIGCONT)
        assert [tuple(row) for row in rows] == [("error", "ANSWER_LOST")], cluster.complaints()
        # Woken, the paused replica ends its answer, finds its lease taken, writes nothing.
        await paused.wait_for_event("answer.recorded_as_lost", timeout=30)
        message = await conn.fetchrow(
            "SELECT status, content FROM messages WHERE id = $1", uuid.UUID(answer_id)
        )
        assert message["status"] == "failed" and "".join(PIECES).startswith(message["content"])
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM answer_logs WHERE message_id = $1", uuid.UUID(answer_id)
            )
            == 1
        )
        await ledger_matches_budget(conn)
    finally:
        await conn.close()
    await every_replica_in_rotation(cluster)


async def test_a_killed_replica_leaves_no_answer_in_flight(cluster: Cluster) -> None:
    key_id, secret = await new_key(cluster.database.app_url, "replicas-kill", "client")
    total = 300
    cluster.fake.replies.extend(Reply(LONG_PIECES, piece_delay=0.3) for _ in range(total))
    started = 0
    all_started = asyncio.Event()

    async def one(client: ChatbotClient, number: int) -> str:
        nonlocal started
        try:
            async for event in client.ask(f"What does a blinking red LED mean? ({number})"):
                if isinstance(event, AnswerStarted):
                    started += 1
                    if started == total:
                        all_started.set()
                if isinstance(event, AnswerFinished):
                    return event.finish_reason
        except ChatbotError as error:
            return error.reason or str(error)
        return "no end"

    async with contextlib.AsyncExitStack() as stack:
        # A call that hangs ends at its deadline, within the wait below, and is counted.
        clients = [
            await stack.enter_async_context(
                ChatbotClient(cluster.edge, metadata=with_key(secret), timeout=60)
            )
            for _ in range(3)
        ]
        answers = [asyncio.create_task(one(clients[n % 3], n)) for n in range(total)]
        await asyncio.wait_for(all_started.wait(), 120)
        # Long enough for a renewal of every lease to carry some text.
        await asyncio.sleep(LEASE_SECONDS / 3 + 1)
        await cluster.replicas[1].kill()
        ends = Counter(await asyncio.wait_for(asyncio.gather(*answers), 200))
    assert set(ends) <= {"stop", "ANSWER_LOST"}, (ends, cluster.complaints())
    assert ends["stop"] > 0 and ends["ANSWER_LOST"] > 0, ends
    conn = await asyncpg.connect(cluster.database.app_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id, finish_reason, error_type FROM answer_logs WHERE api_key_id = $1",
            uuid.UUID(key_id),
        )
        assert len({row["message_id"] for row in rows}) == len(rows) == total
        lost = [row for row in rows if row["error_type"] == "ANSWER_LOST"]
        assert len(lost) == ends["ANSWER_LOST"]
        assert {row["finish_reason"] for row in lost} == {"error"}
        statuses = await conn.fetch(
            "SELECT status, count(*) FROM messages WHERE id = ANY($1::uuid[]) GROUP BY status",
            [row["message_id"] for row in rows],
        )
        assert dict(statuses) == {"complete": ends["stop"], "failed": ends["ANSWER_LOST"]}
        kept = await conn.fetch(
            "SELECT content FROM messages WHERE id = ANY($1::uuid[])",
            [row["message_id"] for row in lost],
        )
        full = "".join(LONG_PIECES)
        assert all(full.startswith(row["content"]) for row in kept)
        assert any(row["content"] for row in kept)
        assert await conn.fetchval("SELECT count(*) FROM answer_leases") == 0
        assert not await conn.fetchval(
            "SELECT count(*) FROM budget_reservations WHERE expires_at > now()"
        )
        await ledger_matches_budget(conn)
    finally:
        await conn.close()


async def test_a_replica_stopped_with_sigterm_drains_while_the_others_serve(
    cluster: Cluster,
) -> None:
    stopping = cluster.replicas[2]
    cluster.fake.replies.extend(Reply(PIECES, piece_delay=0.3) for _ in range(6))
    async with ChatbotClient(cluster.edge, timeout=60) as client:

        async def answer() -> str:
            async for event in client.ask("What does a blinking red LED mean?"):
                if isinstance(event, AnswerFinished):
                    return event.finish_reason
            return "no end"

        answers = [asyncio.create_task(answer()) for _ in range(6)]
        await asyncio.sleep(1.0)
        assert stopping.process is not None
        stopping.process.send_signal(signal.SIGTERM)
        calls = []
        for _ in range(20):
            calls.append([d async for d in client.list_documents()])
            await asyncio.sleep(0.1)
        assert all(calls)
        assert await asyncio.gather(*answers) == ["stop"] * 6
    code, _ = await stopping.finish(timeout=30)
    assert code == 0
    assert await stopping.wait_for_event("server.stopped")
