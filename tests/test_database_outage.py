"""What callers and the log see while PostgreSQL refuses the service."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
import pytest_asyncio
import structlog
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import chat_service_pb2_grpc
from chatbot_server.platform.embedded_postgres import EmbeddedPostgres
from chatbot_server.platform.logs import configure_logging
from tests.conftest import LogSink
from tests.databases import (
    MigratedDatabase,
    create_test_database,
    new_embedded_cluster,
    with_database,
)
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


def _cluster_processes(cluster: EmbeddedPostgres) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
    children = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent_of(entry) == postmaster
    ]
    return [postmaster, *children]


def _parent_of(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


async def test_health_follows_a_frozen_database_while_it_is_frozen(redis_url: str) -> None:
    cluster = new_embedded_cluster()
    try:
        database = await create_test_database(cluster.superuser_url(), "chatbot_frozen")
        running = await start_server(
            server_settings(
                database.app_url,
                redis_url,
                HEALTH_CHECK_INTERVAL_SECONDS="0.2",
                DEPENDENCY_TIMEOUT_SECONDS="1",
                DATABASE_STATEMENT_TIMEOUT_SECONDS="1",
            )
        )
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)

                async def status_is(wanted: int) -> bool:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    return bool(answer.status == wanted)

                await eventually(lambda: status_is(health_pb2.HealthCheckResponse.SERVING))
                frozen = _cluster_processes(cluster)
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    # Reported while frozen (interval + timeout is 1.2 s; generous margin).
                    await eventually(
                        lambda: status_is(health_pb2.HealthCheckResponse.NOT_SERVING), timeout=6
                    )
                    # A call without a deadline ends instead of hanging for the stall (the
                    # test's own bound only keeps a regression from hanging the suite).
                    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await asyncio.wait_for(
                            chat.ListConversations(chat_pb.ListConversationsRequest()), 30
                        )
                    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    for pid in frozen:
                        os.kill(pid, signal.SIGCONT)
                await eventually(
                    lambda: status_is(health_pb2.HealthCheckResponse.SERVING), timeout=6
                )
        finally:
            await running.stop()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


async def test_a_statement_stuck_on_a_lock_ends_at_the_statement_timeout(
    postgres_superuser_url: str, redis_url: str
) -> None:
    database = await create_test_database(postgres_superuser_url, "chatbot_locked")
    running = await start_server(
        server_settings(database.app_url, redis_url, DATABASE_STATEMENT_TIMEOUT_SECONDS="1")
    )
    holder = await asyncpg.connect(with_database(database.superuser_url, database.name))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            chat = chat_service_pb2_grpc.ChatServiceStub(channel)
            created = await chat.CreateConversation(chat_pb.CreateConversationRequest())
            conversation_id = created.conversation.conversation_id
            async with holder.transaction():
                await holder.execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
                # No deadline: only the server-side bound can end this call.
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await chat.DeleteConversation(
                        chat_pb.DeleteConversationRequest(conversation_id=conversation_id)
                    )
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(raised.value).reason == "DATABASE_UNAVAILABLE"
            await chat.DeleteConversation(
                chat_pb.DeleteConversationRequest(conversation_id=conversation_id), timeout=5
            )
    finally:
        await holder.close()
        await running.stop()
