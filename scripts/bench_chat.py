"""Answer streaming benchmark: time to first token, and many concurrent streams.

The real server (embedded PostgreSQL, offline embeddings) answers through the fake
OpenAI-compatible model server, both in this process, with the whole interceptor chain on:
an API key, rate limits counted in Redis (set high enough never to refuse), and the budget
gate and reservation. Prints:
  - TTFT through the server next to the fake model's own first byte plus retrieval, measured
    in the same run, with the model answering at once and after 200 ms; target: server TTFT
    <= 1.2x (model first byte + retrieval)
  - 200, then 500 concurrent StreamAnswer calls: errors, p50/p95 TTFT, total time, server RSS;
    target: no errors at 500
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import time

import httpx
import psutil
import pymupdf
from bench_server import embedded_server, redis_url

from chatbot_client import AnswerFinished, ChatbotClient, TextDelta
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from chatbot_server.app import ChatbotServer
from chatbot_server.governance.key_management import create_key
from chatbot_server.platform.logs import configure_logging
from chatbot_server.retrieval.hybrid_search import SearchFilter, retrieve

QUESTION = "How do I set a static network address on the controller?"
PIECES = [f"word{n} " for n in range(40)] + ["[1]."]
SEQUENTIAL = 60


def manual() -> bytes:
    document = pymupdf.open()
    for number, text in enumerate(
        [
            "Mount the controller on a flat wall with the four screws supplied.",
            "To set a static address, open the web console and enter address, netmask and "
            "gateway under Network. By default the controller uses DHCP.",
            "A blinking red status light means the fan stopped; clean the intake.",
        ],
        start=1,
    ):
        page = document.new_page()
        page.insert_text((72, 72), f"Chapter {number}", fontsize=16)
        page.insert_textbox(pymupdf.Rect(72, 100, 540, 700), text, fontsize=10)
    return bytes(document.tobytes())


async def model_first_byte(fake: FakeOpenAI) -> float:
    """Milliseconds from request to the first SSE data line, straight from the fake."""
    async with httpx.AsyncClient() as http:
        started = time.perf_counter()
        async with http.stream(
            "POST", f"{fake.base_url}/chat/completions",
            json={"model": "m", "messages": [], "stream": True},
        ) as response:  # fmt: skip
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    return (time.perf_counter() - started) * 1000
    raise RuntimeError("no data from the fake model")


async def answer_ttft(client: ChatbotClient) -> tuple[float, bool]:
    """Milliseconds to the first delta, and whether the answer completed."""
    started = time.perf_counter()
    first = None
    completed = False
    async for event in client.ask(QUESTION, timeout=300):
        if isinstance(event, TextDelta) and first is None:
            first = (time.perf_counter() - started) * 1000
        if isinstance(event, AnswerFinished):
            completed = event.finish_reason == "stop"
    return first or float("nan"), completed


async def concurrent(client: ChatbotClient, fake: FakeOpenAI, streams: int) -> None:
    fake.replies = [Reply(PIECES, piece_delay=0.01) for _ in range(streams)]
    process = psutil.Process(os.getpid())
    started = time.perf_counter()
    results = await asyncio.gather(
        *(answer_ttft(client) for _ in range(streams)), return_exceptions=True
    )
    seconds = time.perf_counter() - started
    ttfts = [r[0] for r in results if isinstance(r, tuple) and r[1]]
    errors = streams - len(ttfts)
    quantiles = statistics.quantiles(ttfts, n=20) if len(ttfts) > 1 else [0.0] * 19
    print(f"{streams} concurrent streams: {errors} errors, TTFT p50 "
          f"{statistics.median(ttfts):.0f} ms p95 {quantiles[18]:.0f} ms, all done in "
          f"{seconds:.1f} s, RSS {process.memory_info().rss / 2**20:.0f} MiB")  # fmt: skip


async def sequential_ttft(
    client: ChatbotClient, fake: FakeOpenAI, server: ChatbotServer, delay: float
) -> None:
    """TTFT through the server vs the model's first byte + retrieval, one question at a time."""
    resources = server.resources
    first_bytes, retrievals, ttfts = [], [], []
    for _ in range(SEQUENTIAL):
        fake.replies = [Reply(PIECES, first_byte_delay=delay)]
        first_bytes.append(await model_first_byte(fake))
        started = time.perf_counter()
        await retrieve(resources.pool, resources.embedder, QUESTION, SearchFilter(), 10, 0.3)
        retrievals.append((time.perf_counter() - started) * 1000)
        fake.replies = [Reply(PIECES, first_byte_delay=delay)]
        ttfts.append((await answer_ttft(client))[0])
    base = statistics.median(first_bytes) + statistics.median(retrievals)
    print(f"model delay {delay * 1000:.0f} ms: TTFT through the server p50 "
          f"{statistics.median(ttfts):.1f} ms; model first byte p50 "
          f"{statistics.median(first_bytes):.1f} ms + retrieval p50 "
          f"{statistics.median(retrievals):.1f} ms = {base:.1f} ms; ratio "
          f"{statistics.median(ttfts) / base:.2f}x; target <= 1.2x")  # fmt: skip


async def main() -> None:
    configure_logging("WARNING", "json", io.StringIO())
    fake = FakeOpenAI()
    await fake.start()
    with redis_url() as redis:
        server_settings = {
            "OPENROUTER_API_KEY": "sk-bench",
            "OPENROUTER_BASE_URL": fake.base_url,
            "INGESTION_POLL_SECONDS": "0.1",
            "DB_POOL_MAX_SIZE": "20",
            "REDIS_URL": redis,
            "RATE_LIMIT_AUTHENTICATED": "100000000/hour",
            "RATE_LIMIT_CHAT": "100000000/minute",
            "RATE_LIMIT_UPLOAD": "100000000/hour",
            "RATE_LIMIT_BURST": "100000000/second",
            "DAILY_COST_BUDGET_USD": "1000000",
        }
        async with embedded_server(**server_settings) as server:
            _, secret = await create_key(server.resources.pool, "bench", "client")
            async with ChatbotClient(
                f"127.0.0.1:{server.port}", timeout=600, api_key=secret
            ) as client:
                await run(client, fake, server)
    await fake.stop()


async def run(client: ChatbotClient, fake: FakeOpenAI, server: ChatbotServer) -> None:
    uploaded = await client.upload_document(manual(), title="Controller manual")
    await client.wait_for_document(uploaded.document.document_id)
    for delay in (0.0, 0.2):
        await sequential_ttft(client, fake, server, delay)
    for streams in (200, 500):
        await concurrent(client, fake, streams)


if __name__ == "__main__":
    asyncio.run(main())
