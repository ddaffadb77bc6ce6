"""What governance costs a call, measured in one process.

Three servers answer the same trivial ChatService.ListConversations (an empty list, no
database), so only the interceptors differ:
  - bare grpc.aio, no interceptors;
  - the access log only;
  - the server's whole chain: access log, audit (admin actions only, so idle here),
    identity (an API key, cached), rate limit (three limits in Redis, one script run per
    call), budget gate (chat calls only, so idle here).
Prints p50/p95 of sequential calls, calls/s at 50 concurrent callers, and what the chain
adds over bare (targets: <= 1 ms p50 added, >= 0.6x bare throughput). Then the round trips
the governance makes: one budget reservation in PostgreSQL (its release rides on the
ledger row's statement) and one rate-limit script run in Redis, p50 over sequential calls.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
from bench_server import embedded_server, redis_url

from chatbot.v1 import chat_service_pb2 as pb
from chatbot.v1 import chat_service_pb2_grpc
from chatbot_server.app import ChatbotServer, server_interceptors
from chatbot_server.config import Rate
from chatbot_server.governance.key_management import create_key
from chatbot_server.governance.rate_limit_rules import Limit
from chatbot_server.money import budget_store
from chatbot_server.platform.logs import configure_logging

SEQUENTIAL_CALLS = 2_000
CONCURRENT_CALLERS = 50
CALLS_PER_CALLER = 100
ROUND_TRIPS = 500
ROUNDS = 3
# High enough that no call is refused: the cost of counting is measured, not of refusing.
UNLIMITED = {
    "RATE_LIMIT_AUTHENTICATED": "100000000/hour",
    "RATE_LIMIT_BURST": "100000000/second",
}


class EmptyChat(chat_service_pb2_grpc.ChatServiceServicer):
    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: object
    ) -> pb.ListConversationsResponse:
        return pb.ListConversationsResponse()


async def start(interceptors: list[grpc.aio.ServerInterceptor]) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=interceptors)
    chat_service_pb2_grpc.add_ChatServiceServicer_to_server(EmptyChat(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def measure(address: str, secret: str) -> tuple[float, float, float]:
    """p50 and p95 latency (ms) of sequential calls, and calls/s with concurrent callers."""
    metadata = (("authorization", f"Bearer {secret}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = chat_service_pb2_grpc.ChatServiceStub(channel)
        request = pb.ListConversationsRequest()
        for _ in range(200):
            await stub.ListConversations(request, metadata=metadata)
        latencies = []
        for _ in range(SEQUENTIAL_CALLS):
            started = time.perf_counter()
            await stub.ListConversations(request, metadata=metadata)
            latencies.append((time.perf_counter() - started) * 1000)

        async def caller() -> None:
            for _ in range(CALLS_PER_CALLER):
                await stub.ListConversations(request, metadata=metadata)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENT_CALLERS)))
        throughput = CONCURRENT_CALLERS * CALLS_PER_CALLER / (time.perf_counter() - started)
    quantiles = statistics.quantiles(latencies, n=20)
    return statistics.median(latencies), quantiles[18], throughput


async def p50_ms(operation: Callable[[], Awaitable[object]]) -> float:
    for _ in range(50):
        await operation()
    timings = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        await operation()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def round_trips(chatbot: ChatbotServer) -> None:
    pool = chatbot.resources.pool

    async def reserve() -> None:
        # Each left to expire: the budget is far beyond what they add up to.
        await budget_store.reserve(pool, uuid.uuid4(), {"global": 10**12}, 1000, timedelta(60))

    limits = [Limit("authenticated", Rate(10**8, 3600)), Limit("burst", Rate(10**8, 1))]

    async def count_call() -> None:
        await chatbot.resources.rate_limiter.acquire("bench", limits)

    reservation = await p50_ms(reserve)
    counting = await p50_ms(count_call)
    print(f"budget reservation in PostgreSQL: p50 {reservation:.3f} ms")
    print(f"rate-limit script in Redis (two limits): p50 {counting:.3f} ms")


async def main() -> None:
    # The access log is part of what is measured; it goes to memory, not the terminal.
    configure_logging("INFO", "json", io.StringIO())
    with redis_url() as redis:
        async with embedded_server(REDIS_URL=redis, **UNLIMITED) as chatbot:
            settings, resources = chatbot.settings, chatbot.resources
            _, secret = await create_key(resources.pool, "bench", "client")
            # The server's own chain, as it serves: access log first.
            chain = server_interceptors(settings, resources, chatbot.api_keys)
            access_log = chain[0]
            servers = {
                "bare grpc.aio": await start([]),
                "access log only": await start([access_log]),
                "whole chain": await start(chain),
            }
            try:
                rows = {
                    name: await measure(address, secret) for name, (_, address) in servers.items()
                }
                await round_trips(chatbot)
            finally:
                for server, _ in servers.values():
                    await server.stop(None)

    print(
        f"ChatService.ListConversations (empty), {SEQUENTIAL_CALLS} sequential calls and "
        f"{CONCURRENT_CALLERS} callers x {CALLS_PER_CALLER} calls, median of {ROUNDS} rounds"
    )
    print(f"{'server':<18}{'p50 ms':>10}{'p95 ms':>10}{'calls/s @50':>14}")
    for name, (p50, p95, rate) in rows.items():
        print(f"{name:<18}{p50:>10.3f}{p95:>10.3f}{rate:>14.0f}")
    bare_p50, bare_p95, bare_rate = rows["bare grpc.aio"]
    for name in ("access log only", "whole chain"):
        p50, p95, rate = rows[name]
        print(f"{name}: +{p50 - bare_p50:.3f} ms p50, +{p95 - bare_p95:.3f} ms p95, "
              f"throughput {rate / bare_rate:.2f}x bare")  # fmt: skip
    print("targets for the whole chain: <= 1 ms p50 added, >= 0.6x bare throughput")


if __name__ == "__main__":
    asyncio.run(main())
