"""Replicas behind the edge: throughput with one, two and three server processes, what
resumable answers cost on the way to the first token, and how fast a resume replays.

Server processes (`chatbot-server serve`, as deployed: no ingestion inside, a worker
process beside) share one embedded PostgreSQL and one Redis; the fake OpenAI-compatible
model answers at once, in this process; Envoy runs on the generated configuration.
Prints:
  - answers/s through the edge with 1, 2 and 3 replicas, 50 callers at once, the model
    instant: on one machine the replicas share its cores, so this shows what a replica
    costs, not what a second machine adds
  - for each, where an answer's CPU went (the servers, Envoy, PostgreSQL, Redis, and this
    process as the callers), and what it cost PostgreSQL (transactions) and Redis
    (commands): the figures of the README's capacity model
  - time to first token through one server, answers resumable (ANSWER_RESUME_SECONDS=30)
    against not (0), alternating in the same run; target: ratio <= 1.1x
  - time from a ResumeAnswer call on another replica to its first replayed event, after the
    caller dropped its stream at the third delta
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import psutil
import redis.asyncio as redis_client
from bench_chat import PIECES, QUESTION, manual
from bench_edge import direct_first_delta
from bench_server import free_port, redis_url

from chatbot.v1 import chat_service_pb2 as pb
from chatbot.v1.chat_service_pb2_grpc import ChatServiceStub
from chatbot_client import ChatbotClient
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from chatbot_server.config import EdgeSettings
from chatbot_server.edge.envoy_config import envoy_config, parse_upstreams
from chatbot_server.edge.envoy_process import EdgeProcess
from chatbot_server.platform.logs import configure_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.databases import create_test_database, new_embedded_cluster
from tests.processes import ServerProcess

CALLERS = 50
ANSWERS_PER_ROUND = 600
TTFT_SAMPLES = 40
RESUMES = 30


@contextlib.asynccontextmanager
async def servers(count: int, env: dict[str, str]) -> AsyncIterator[list[str]]:
    """`count` server processes; their addresses."""
    async with server_processes(count, env) as (addresses, _):
        yield addresses


@contextlib.asynccontextmanager
async def server_processes(
    count: int, env: dict[str, str]
) -> AsyncIterator[tuple[list[str], list[ServerProcess]]]:
    """`count` server processes; their addresses, and the processes."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    processes = [
        ServerProcess({**env, "GRPC_ADDRESS": address, "INGESTION_WORKERS": "0"})
        for address in addresses
    ]
    await asyncio.gather(*(process.start() for process in processes))
    try:
        await asyncio.gather(*(process.wait_for_event("server.started") for process in processes))
        yield addresses, processes
    finally:
        await asyncio.gather(*(process.kill() for process in processes))


@contextlib.asynccontextmanager
async def edge_in_front(addresses: list[str]) -> AsyncIterator[tuple[str, int]]:
    """The edge's address and process id."""
    settings = EdgeSettings(web_address=f"127.0.0.1:{free_port()}")
    edge = await EdgeProcess.start(
        envoy_config(settings, parse_upstreams(",".join(addresses))), settings.web_address
    )
    try:
        # The health checks' first round: every replica in rotation.
        await asyncio.sleep(3)
        yield settings.web_address, edge.pid
    finally:
        await edge.stop()


async def throughput(address: str, fake: FakeOpenAI) -> tuple[float, float]:
    """Answers/s with CALLERS at once, and the p50 TTFT in ms."""
    fake.replies = [Reply(PIECES) for _ in range(ANSWERS_PER_ROUND + CALLERS)]
    remaining = ANSWERS_PER_ROUND
    ttfts: list[float] = []
    async with ChatbotClient(address, timeout=300) as client:
        for _ in range(CALLERS // 5):
            await direct_first_delta(client)

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                ttfts.append(await direct_first_delta(client))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        seconds = time.perf_counter() - started
    return ANSWERS_PER_ROUND / seconds, statistics.median(ttfts)


class Costs:
    """CPU seconds of each part, PostgreSQL transactions and Redis commands, between two
    readings."""

    def __init__(self, parts: dict[str, list[psutil.Process]], database_url: str, redis: str):
        self._parts = parts
        self._database_url = database_url
        self._redis = redis

    async def read(self) -> dict[str, float]:
        reading = {
            name: sum(sum(process.cpu_times()[:2]) for process in processes)
            for name, processes in self._parts.items()
        }
        conn = await asyncpg.connect(self._database_url)
        try:
            reading["PostgreSQL transactions"] = await conn.fetchval(
                "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"
            )
        finally:
            await conn.close()
        client = redis_client.from_url(self._redis)
        try:
            reading["Redis commands"] = (await client.info("stats"))["total_commands_processed"]
        finally:
            await client.aclose()
        return reading


def postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def redis_processes(url: str) -> list[psutil.Process]:
    port = url.rsplit(":", 1)[1].split("/")[0]
    return [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "redis-server" and any(port in part for part in p.info["cmdline"])
    ]


async def replicas_throughput(
    env: dict[str, str], fake: FakeOpenAI, database_url: str, redis: str
) -> None:
    for count in (1, 2, 3):
        async with (
            server_processes(count, env) as (addresses, processes),
            edge_in_front(addresses) as (edge, edge_pid),
        ):
            costs = Costs(
                {
                    "servers": [psutil.Process(p.process.pid) for p in processes if p.process],
                    "Envoy": [psutil.Process(edge_pid)],
                    "PostgreSQL": postgres_processes(),
                    "Redis": redis_processes(redis),
                    "callers": [psutil.Process()],
                },
                database_url,
                redis,
            )
            before = await costs.read()
            rate, ttft = await throughput(edge, fake)
            after = await costs.read()
        per_answer = {
            name: (after[name] - before[name]) / (ANSWERS_PER_ROUND + CALLERS // 5)
            for name in before
        }
        cpu = ", ".join(
            f"{name} {per_answer[name] * 1000:.1f}"
            for name in ("servers", "Envoy", "PostgreSQL", "Redis", "callers")
        )
        print(f"{count} replica(s) behind the edge: {rate:.0f} answers/s, TTFT p50 "
              f"{ttft:.1f} ms ({CALLERS} callers, instant model); CPU ms per answer: {cpu}; "
              f"{per_answer['PostgreSQL transactions']:.1f} PostgreSQL transactions and "
              f"{per_answer['Redis commands']:.1f} Redis commands per answer")  # fmt: skip


async def resumable_cost(env: dict[str, str], fake: FakeOpenAI) -> None:
    async with (
        servers(1, {**env, "ANSWER_RESUME_SECONDS": "30"}) as resumable,
        servers(1, {**env, "ANSWER_RESUME_SECONDS": "0"}) as not_resumable,
        ChatbotClient(resumable[0], timeout=300) as with_resume,
        ChatbotClient(not_resumable[0], timeout=300) as without,
    ):
        rounds: dict[str, list[float]] = {"with": [], "without": []}
        fake.replies = [Reply(PIECES) for _ in range(2 * TTFT_SAMPLES + 20)]
        for _ in range(10):
            await direct_first_delta(with_resume)
            await direct_first_delta(without)
        for _ in range(TTFT_SAMPLES):
            rounds["with"].append(await direct_first_delta(with_resume))
            rounds["without"].append(await direct_first_delta(without))
    with_p50, without_p50 = (statistics.median(rounds[name]) for name in ("with", "without"))
    print(f"TTFT through one server, instant model: resumable p50 {with_p50:.1f} ms, "
          f"not resumable p50 {without_p50:.1f} ms; ratio {with_p50 / without_p50:.3f}x; "
          "target <= 1.1x")  # fmt: skip


async def resume_latency(env: dict[str, str], fake: FakeOpenAI) -> None:
    waits = []
    async with (
        servers(2, {**env, "ANSWER_RESUME_SECONDS": "30"}) as (first, second),
        grpc.aio.insecure_channel(first) as asking,
        grpc.aio.insecure_channel(second) as resuming,
    ):
        for _ in range(RESUMES):
            fake.replies = [Reply(PIECES, piece_delay=0.02)]
            call = ChatServiceStub(asking).StreamAnswer(pb.StreamAnswerRequest(question=QUESTION))
            received: list[pb.StreamAnswerResponse] = []
            while sum(m.WhichOneof("event") == "delta" for m in received) < 3:
                received.append(await call.read())
            call.cancel()
            started = time.perf_counter()
            resumed = ChatServiceStub(resuming).ResumeAnswer(
                pb.ResumeAnswerRequest(
                    answer_id=received[0].started.answer_id, after_sequence=received[-1].sequence
                )
            )
            await resumed.read()
            waits.append((time.perf_counter() - started) * 1000)
            while await resumed.read() is not grpc.aio.EOF:
                pass
    p95 = statistics.quantiles(waits, n=20)[18]
    print(f"ResumeAnswer on another replica to its first replayed event: p50 "
          f"{statistics.median(waits):.1f} ms, p95 {p95:.1f} ms ({RESUMES} resumes)")  # fmt: skip


async def main() -> None:
    configure_logging("WARNING", "json", io.StringIO())
    fake = FakeOpenAI()
    await fake.start()
    cluster = new_embedded_cluster()
    try:
        database = await create_test_database(cluster.superuser_url(), "chatbot_bench")
        with redis_url() as redis:
            env = {
                "DATABASE_URL": database.app_url,
                "REDIS_URL": redis,
                "OPENROUTER_API_KEY": "sk-bench",
                "OPENROUTER_BASE_URL": fake.base_url,
                "RATE_LIMIT_ENABLED": "false",
                "DAILY_COST_BUDGET_USD": "1000000",
            }
            worker = ServerProcess(env, "worker")
            await worker.start()
            try:
                async with servers(1, env) as (address,), ChatbotClient(address) as client:
                    uploaded = await client.upload_document(manual(), title="Controller manual")
                    await client.wait_for_document(uploaded.document.document_id)
                await replicas_throughput(env, fake, database.superuser_url, redis)
                await resumable_cost(env, fake)
                await resume_latency(env, fake)
            finally:
                await worker.kill()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
