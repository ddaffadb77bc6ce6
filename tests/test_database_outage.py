"""What callers and the log see while PostgreSQL refuses the service."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
import pytest_asyncio
import structlog
from google.rpc import error_details_pb2

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import chat_service_pb2_grpc
from chatbot_server.logs import configure_logging
from tests.conftest import LogSink
from tests.databases import MigratedDatabase, create_test_database
from tests.polling import eventually
from tests.rpc_errors import detail, error_info
from tests.servers import RunningServer, server_settings, start_server

PLANTED_QUESTION = "What is the secret plan zq-7f3a for the harbour?"


def test_logged_tracebacks_carry_no_local_variables(log_sink: LogSink) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        password = "hunter2-in-a-local"  # noqa: F841 (what a frame would leak)
        raise RuntimeError("boom")
    except RuntimeError as error:
        structlog.get_logger("test").error("failed", exc_info=error)
    finally:
        configure_logging("INFO", "json", log_sink)  # type: ignore[arg-type]
    line = stream.getvalue()
    assert json.loads(line)["exception"][0]["exc_type"] == "RuntimeError"
    assert "hunter2" not in line


@pytest_asyncio.fixture
async def outage_server(
    postgres_superuser_url: str, redis_url: str
) -> AsyncIterator[tuple[RunningServer, MigratedDatabase]]:
    database = await create_test_database(postgres_superuser_url, "chatbot_outage")
    running = await start_server(server_settings(database.app_url, redis_url))
    yield running, database
    await running.stop()


async def _refuse_app_role(database: MigratedDatabase, refused: bool) -> None:
    conn = await asyncpg.connect(database.superuser_url)
    try:
        await conn.execute(f'ALTER ROLE "{database.app_role}" {"NOLOGIN" if refused else "LOGIN"}')
        if refused:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                database.app_role,
            )
    finally:
        await conn.close()


async def test_database_refusing_the_service_is_unavailable_and_nothing_secret_is_logged(
    outage_server: tuple[RunningServer, MigratedDatabase], log_sink: LogSink
) -> None:
    running, database = outage_server
    first_line = len(log_sink.lines)
    async with grpc.aio.insecure_channel(running.address) as channel:
        chat = chat_service_pb2_grpc.ChatServiceStub(channel)
        await _refuse_app_role(database, refused=True)
        try:
            for call in (
                chat.ListConversations(chat_pb.ListConversationsRequest(), timeout=10),
                chat.CreateConversation(
                    chat_pb.CreateConversationRequest(title=PLANTED_QUESTION), timeout=10
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                assert error_info(raised.value).reason == "DATABASE_UNAVAILABLE"
                assert detail(raised.value, error_details_pb2.RetryInfo).retry_delay.seconds >= 1
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in chat.StreamAnswer(
                    chat_pb.StreamAnswerRequest(question=PLANTED_QUESTION), timeout=10
                ):
                    pass
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await _refuse_app_role(database, refused=False)

        async def served_again() -> bool:
            try:
                await chat.ListConversations(chat_pb.ListConversationsRequest(), timeout=5)
            except grpc.aio.AioRpcError:
                return False
            return True

        await eventually(served_again)

    logged = "\n".join(log_sink.lines[first_line:])
    for url in (database.app_url, database.owner_url, database.superuser_url):
        password = urlsplit(url).password
        assert password and password not in logged
    assert "zq-7f3a" not in logged
