"""Upload memory benchmark: eight concurrent 45 MiB uploads to one server process.

The server runs as operators run it (`chatbot-server serve`, no ingestion workers, so only
the uploads' own memory is measured) on an embedded PostgreSQL in a temporary folder, with
MAX_UPLOAD_MEMORY_BYTES at its default of 200 MiB. Its resident memory is sampled every
10 ms. Prints the idle, peak and after (5 s after the last upload ended) RSS, and checks:
  - peak - idle <= MAX_UPLOAD_MEMORY_BYTES + MARGIN_BYTES
  - after - idle <= 100 MiB
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
import time
from pathlib import Path

import psutil
from bench_server import free_port

from chatbot_client import ChatbotClient
from chatbot_client.errors import ChatbotError
from chatbot_server.config import DocumentSettings
from chatbot_server.platform.logs import configure_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.databases import create_test_database, new_embedded_cluster
from tests.processes import ServerProcess

MIB = 1024 * 1024
UPLOADS = 8
UPLOAD_BYTES = 45 * MIB
MEMORY_LIMIT = DocumentSettings().max_upload_memory_bytes
# What the server may hold beyond the uploads' own bytes: gRPC's receive buffers and
# messages in flight, the database driver's buffers, allocator slack.
MARGIN_BYTES = 64 * MIB
RETURN_LIMIT = 100 * MIB
SETTLE_SECONDS = 5


def pdf_bytes(seed: int) -> bytes:
    """UPLOAD_BYTES that start like a PDF; distinct, so that none is deduplicated."""
    return b"%PDF-1.7\n" + os.urandom(UPLOAD_BYTES - 9 - 8) + seed.to_bytes(8, "big")


async def sample_peak(process: psutil.Process, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, process.memory_info().rss)
        await asyncio.sleep(0.01)
    return peak


async def upload(address: str, content: bytes, number: int) -> str:
    async with ChatbotClient(address, timeout=300) as client:
        try:
            await client.upload_document(content, title=f"big {number}", filename=f"{number}.pdf")
        except ChatbotError as error:
            return error.reason or f"{error.code.name} ({error.message[:200]})"
    return "stored"


async def main() -> None:
    configure_logging("WARNING", "json", io.StringIO())
    cluster = new_embedded_cluster()
    try:
        database = await create_test_database(cluster.superuser_url(), "chatbot_bench_memory")
        address = f"127.0.0.1:{free_port()}"
        server = ServerProcess(
            {
                "DATABASE_URL": database.app_url,
                "REDIS_URL": "",
                "GRPC_ADDRESS": address,
                "INGESTION_WORKERS": "0",
                "RATE_LIMIT_ENABLED": "false",
            }
        )
        await server.start()
        try:
            await server.wait_for_event("server.started")
            assert server.process is not None
            measured = psutil.Process(server.process.pid)
            contents = [pdf_bytes(number) for number in range(UPLOADS)]
            await asyncio.sleep(2)
            idle = measured.memory_info().rss
            stop = asyncio.Event()
            peak_task = asyncio.create_task(sample_peak(measured, stop))
            started = time.perf_counter()
            ends = await asyncio.gather(
                *(upload(address, content, n) for n, content in enumerate(contents))
            )
            took = time.perf_counter() - started
            await asyncio.sleep(SETTLE_SECONDS)
            stop.set()
            peak = await peak_task
            after = measured.memory_info().rss
            for event in server.events:
                if event.get("level") == "error":
                    print("server error:", event)
        finally:
            await server.kill()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)

    outcome = ", ".join(f"{ends.count(end)} {end}" for end in sorted(set(ends)))
    print(f"{UPLOADS} concurrent uploads of {UPLOAD_BYTES // MIB} MiB in {took:.1f} s: {outcome}")
    print(f"  MAX_UPLOAD_MEMORY_BYTES {MEMORY_LIMIT // MIB} MiB, margin {MARGIN_BYTES // MIB} MiB")
    print(
        f"  RSS idle {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB "
        f"(+{(peak - idle) / MIB:.0f}), after {SETTLE_SECONDS} s {after / MIB:.0f} MiB "
        f"(+{(after - idle) / MIB:.0f})"
    )
    peak_met = peak - idle <= MEMORY_LIMIT + MARGIN_BYTES
    after_met = after - idle <= RETURN_LIMIT
    print(f"  target peak - idle <= limit + margin: {'met' if peak_met else 'NOT met'}")
    print(
        f"  target after - idle <= {RETURN_LIMIT // MIB} MiB: {'met' if after_met else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
