"""Session-wide real dependencies: PostgreSQL with pgvector, Redis, and the gRPC server."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio

from chatbot_server.platform.logs import configure_logging
from tests.databases import MigratedDatabase, create_test_database, new_embedded_cluster
from tests.redis_servers import redis_url_or_own
from tests.servers import RunningServer, server_settings, start_server


class LogSink:
    """Keeps every JSON log line for assertions and echoes it to the captured stdout."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line.strip())
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def events(self, name: str) -> list[dict[str, object]]:
        parsed = (json.loads(line) for line in self.lines if line.startswith("{"))
        return [event for event in parsed if event.get("event") == name]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keeps each phase's report on the test, so a fixture can tell that the test failed
    (a browser test then saves a screenshot)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def log_sink() -> LogSink:
    sink = LogSink()
    configure_logging("INFO", "json", sink)  # type: ignore[arg-type]
    return sink


@pytest.fixture(scope="session")
def postgres_superuser_url(log_sink: LogSink) -> Iterator[str]:
    """A superuser URL: DATABASE_URL when set (a server with pgvector), else an embedded cluster."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    cluster = new_embedded_cluster()
    try:
        yield cluster.superuser_url()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, f"chatbot_test_{os.getpid()}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else a redis-server of the test session's own."""
    with redis_url_or_own() as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def server(database: MigratedDatabase, redis_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(server_settings(database.app_url, redis_url))
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened
