"""What the chatbot server adds to a bare grpc.aio server, measured in one process.

Both servers answer grpc.health.v1 Check: the baseline is grpcio-health-checking's servicer
on a server with no interceptors; the chatbot server adds its access-log interceptor (request
id, error mapping, one JSON log event per call), its health service and reflection. The
chatbot server runs on the embedded PostgreSQL in a temporary folder. Prints latency at one
caller and throughput at 50 concurrent callers, and the ratio chatbot / baseline.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time

import grpc
from bench_server import embedded_server
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from chatbot_server.platform.logs import configure_logging

SEQUENTIAL_CALLS = 2_000
CONCURRENT_CALLERS = 50
CALLS_PER_CALLER = 100


async def measure(address: str) -> tuple[float, float, float]:
    """p50 and p95 latency (ms) of sequential calls, and calls/s with concurrent callers."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        for _ in range(200):
            await stub.Check(request)
        latencies = []
        for _ in range(SEQUENTIAL_CALLS):
            started = time.perf_counter()
            await stub.Check(request)
            latencies.append((time.perf_counter() - started) * 1000)

        async def caller() -> None:
            for _ in range(CALLS_PER_CALLER):
                await stub.Check(request)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENT_CALLERS)))
        throughput = CONCURRENT_CALLERS * CALLS_PER_CALLER / (time.perf_counter() - started)
    quantiles = statistics.quantiles(latencies, n=20)
    return statistics.median(latencies), quantiles[18], throughput


async def bare_server() -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def main() -> None:
    # The access log is part of what is measured; it goes to memory, not the terminal.
    configure_logging("INFO", "json", io.StringIO())
    bare, bare_address = await bare_server()
    try:
        async with embedded_server() as chatbot:
            rows = {
                "bare grpc.aio": await measure(bare_address),
                "chatbot server": await measure(f"127.0.0.1:{chatbot.port}"),
            }
    finally:
        await bare.stop(None)

    print(
        f"grpc.health.v1 Check, {SEQUENTIAL_CALLS} sequential calls and "
        f"{CONCURRENT_CALLERS} callers x {CALLS_PER_CALLER} calls"
    )
    print(f"{'server':<16}{'p50 ms':>10}{'p95 ms':>10}{'calls/s @50':>14}")
    for name, (p50, p95, throughput) in rows.items():
        print(f"{name:<16}{p50:>10.3f}{p95:>10.3f}{throughput:>14.0f}")
    (base_p50, _, base_rate), (ours_p50, _, ours_rate) = rows.values()
    print(
        f"ratio chatbot/bare: p50 latency {ours_p50 / base_p50:.2f}x, "
        f"throughput {ours_rate / base_rate:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
