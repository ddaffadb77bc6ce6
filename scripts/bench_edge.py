"""The edge's cost: the same calls straight to the server and through Envoy, in one run.

The real server (embedded PostgreSQL, offline embeddings) answers through the fake
OpenAI-compatible model server; Envoy runs on the generated configuration in front of it.
Prints:
  - Search p50/p95, direct gRPC against gRPC through the edge and Connect through the edge
    (what a browser sends); target: <= 1 ms added at p50. Connect is sent by a Python HTTP/1.1
    client, whose own cost shows in a CORS preflight that the edge answers without the server
  - time to first token, direct against Connect through the edge, the model answering after
    200 ms; target: ratio <= 1.1x
  - 200 concurrent answers streamed through the edge over Connect: errors (target 0), TTFT
    p50/p95, and Envoy's resident memory
"""

from __future__ import annotations

import asyncio
import io
import statistics
import struct
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
import psutil
from bench_chat import PIECES, QUESTION, manual
from bench_server import embedded_server, free_port, redis_url

from chatbot.v1 import chat_service_pb2, document_service_pb2
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from chatbot_client import ChatbotClient, TextDelta
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from chatbot_server.config import EdgeSettings
from chatbot_server.edge.envoy_config import Upstream, envoy_config
from chatbot_server.edge.envoy_process import EdgeProcess
from chatbot_server.platform.logs import configure_logging
from tests.edge_support import CONNECT_HEADERS, envelope

SEARCHES = 300
ANSWERS = 40
CONCURRENT = 200
MODEL_DELAY = 0.2
SEARCH = "/chatbot.v1.DocumentService/Search"
STREAM_ANSWER = "/chatbot.v1.ChatService/StreamAnswer"
PREFLIGHT = {
    "origin": "http://localhost:3000",
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type",
}


async def timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    """Milliseconds of each of `times` sequential calls, after a few to warm up."""
    for _ in range(10):
        await call()
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def p50_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=20)[18]


async def connect_first_delta(http: httpx.AsyncClient, url: str) -> tuple[float, bool]:
    """Milliseconds to the first text delta of a Connect stream, and whether it ended well."""
    body = envelope(chat_service_pb2.StreamAnswerRequest(question=QUESTION))
    headers = {"content-type": "application/connect+proto", **CONNECT_HEADERS}
    started = time.perf_counter()
    first = None
    buffer = b""
    ended_well = False
    async with http.stream("POST", url, content=body, headers=headers) as response:
        async for data in response.aiter_raw():
            buffer += data
            while len(buffer) >= 5:
                flags, size = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + size:
                    break
                payload, buffer = buffer[5 : 5 + size], buffer[5 + size :]
                if flags & 0x02:
                    ended_well = b'"error"' not in payload
                    continue
                event = chat_service_pb2.StreamAnswerResponse.FromString(payload)
                if event.WhichOneof("event") == "delta" and first is None:
                    first = (time.perf_counter() - started) * 1000
    return first or float("nan"), ended_well


async def direct_first_delta(client: ChatbotClient) -> float:
    started = time.perf_counter()
    first = float("nan")
    async for event in client.ask(QUESTION, timeout=300):
        if isinstance(event, TextDelta) and first != first:
            first = (time.perf_counter() - started) * 1000
    return first


async def searches(server_address: str, edge_url: str, edge_address: str) -> None:
    request = document_service_pb2.SearchRequest(query=QUESTION, top_k=5)
    async with (
        grpc.aio.insecure_channel(server_address) as direct_channel,
        grpc.aio.insecure_channel(edge_address) as edge_channel,
        httpx.AsyncClient() as http,
    ):
        direct, through = DocumentServiceStub(direct_channel), DocumentServiceStub(edge_channel)

        async def connect() -> None:
            response = await http.post(
                edge_url + SEARCH,
                content=request.SerializeToString(),
                headers={"content-type": "application/proto", **CONNECT_HEADERS},
            )
            response.raise_for_status()

        async def preflight() -> None:
            response = await http.options(edge_url + SEARCH, headers=PREFLIGHT)
            response.raise_for_status()

        # Interleaved rounds, so that the machine's drift falls on all alike.
        rounds: dict[str, list[float]] = {"direct": [], "grpc": [], "connect": [], "floor": []}
        for _ in range(3):
            rounds["direct"] += await timed(lambda: direct.Search(request), SEARCHES // 3)
            rounds["grpc"] += await timed(lambda: through.Search(request), SEARCHES // 3)
            rounds["connect"] += await timed(connect, SEARCHES // 3)
            rounds["floor"] += await timed(preflight, SEARCHES // 3)
    base50, base95 = p50_p95(rounds["direct"])
    print(f"Search direct gRPC: p50 {base50:.2f} ms, p95 {base95:.2f} ms")
    for name in ("grpc", "connect"):
        p50, p95 = p50_p95(rounds[name])
        label = "gRPC" if name == "grpc" else "Connect"
        print(f"Search {label} through the edge: p50 {p50:.2f} ms (+{p50 - base50:.2f}), "
              f"p95 {p95:.2f} ms (+{p95 - base95:.2f}); target <= 1 ms added at p50")  # fmt: skip
    floor50, _ = p50_p95(rounds["floor"])
    print(f"The HTTP client's floor: a CORS preflight the edge answers itself, p50 "
          f"{floor50:.2f} ms")  # fmt: skip


async def first_tokens(client: ChatbotClient, fake: FakeOpenAI, edge_url: str) -> None:
    direct, through = [], []
    async with httpx.AsyncClient(timeout=300) as http:
        for _ in range(ANSWERS):
            fake.replies = [Reply(PIECES, first_byte_delay=MODEL_DELAY)]
            direct.append(await direct_first_delta(client))
            fake.replies = [Reply(PIECES, first_byte_delay=MODEL_DELAY)]
            through.append((await connect_first_delta(http, edge_url + STREAM_ANSWER))[0])
    ratio = statistics.median(through) / statistics.median(direct)
    print(f"TTFT (model first byte after {MODEL_DELAY * 1000:.0f} ms): direct p50 "
          f"{statistics.median(direct):.1f} ms, Connect through the edge p50 "
          f"{statistics.median(through):.1f} ms; ratio {ratio:.3f}x; target <= 1.1x")  # fmt: skip


async def concurrent_through_edge(fake: FakeOpenAI, edge_url: str, envoy_pid: int) -> None:
    fake.replies = [Reply(PIECES, piece_delay=0.01) for _ in range(CONCURRENT)]
    envoy = psutil.Process(envoy_pid)
    before = envoy.memory_info().rss
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(connect_first_delta(http, edge_url + STREAM_ANSWER) for _ in range(CONCURRENT)),
            return_exceptions=True,
        )
        seconds = time.perf_counter() - started
        peak = envoy.memory_info().rss
    ttfts = [r[0] for r in results if isinstance(r, tuple) and r[1]]
    errors = CONCURRENT - len(ttfts)
    p50, p95 = p50_p95(ttfts)
    print(f"{CONCURRENT} concurrent answers through the edge (Connect): {errors} errors "
          f"(target 0), TTFT p50 {p50:.0f} ms p95 {p95:.0f} ms, all done in {seconds:.1f} s; "
          f"Envoy RSS {before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB after")  # fmt: skip


async def main() -> None:
    configure_logging("WARNING", "json", io.StringIO())
    fake = FakeOpenAI()
    await fake.start()
    with redis_url() as redis:
        settings = {
            "OPENROUTER_API_KEY": "sk-bench",
            "OPENROUTER_BASE_URL": fake.base_url,
            "INGESTION_POLL_SECONDS": "0.1",
            "DB_POOL_MAX_SIZE": "20",
            "REDIS_URL": redis,
            "RATE_LIMIT_ENABLED": "false",
            "DAILY_COST_BUDGET_USD": "1000000",
        }
        async with embedded_server(**settings) as server:
            server_address = f"127.0.0.1:{server.port}"
            edge_settings = EdgeSettings(web_address=f"127.0.0.1:{free_port()}")
            config = envoy_config(edge_settings, [Upstream("127.0.0.1", server.port)])
            edge = await EdgeProcess.start(config, edge_settings.web_address)
            edge_url = f"http://{edge_settings.web_address}"
            try:
                async with ChatbotClient(server_address, timeout=600) as client:
                    uploaded = await client.upload_document(manual(), title="Controller manual")
                    await client.wait_for_document(uploaded.document.document_id)
                    await searches(server_address, edge_url, edge_settings.web_address)
                    await first_tokens(client, fake, edge_url)
                    await concurrent_through_edge(fake, edge_url, edge.pid)
            finally:
                await edge.stop()
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
