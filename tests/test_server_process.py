"""The server as a process: embedded defaults, SIGTERM with open streams, bad environments."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot_server.config import DatabaseSettings
from chatbot_server.platform.embedded_postgres import EmbeddedPostgres
from tests.databases import MigratedDatabase, free_port, with_database
from tests.processes import ServerProcess

GRACE_SECONDS = 5.0


@asynccontextmanager
async def server_on_embedded_defaults(
    grace_seconds: float, own_process_group: bool = False
) -> AsyncIterator[tuple[ServerProcess, Path]]:
    """A started server process on its embedded defaults, in a data folder of its own;
    killed, its PostgreSQL stopped and the folder removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="chatbot-test-embedded-"))
    server = ServerProcess(
        {
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "EMBEDDED_POSTGRES_DIR": str(data_dir),
            "EMBEDDED_POSTGRES_PORT": str(free_port()),
            "SHUTDOWN_GRACE_SECONDS": str(grace_seconds),
            "DATABASE_URL": "",
            "REDIS_URL": "",
        },
        own_process_group=own_process_group,
    )
    await server.start()
    try:
        yield server, data_dir
    finally:
        await server.kill()
        cluster = EmbeddedPostgres(data_dir, 1)
        if cluster.is_running():
            cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture
async def embedded_server() -> AsyncIterator[tuple[ServerProcess, Path]]:
    """The server on its embedded defaults, in a data folder of its own."""
    async with server_on_embedded_defaults(GRACE_SECONDS) as running:
        yield running


async def test_sigterm_with_an_open_stream_ends_it_cleanly_within_the_grace_period(
    embedded_server: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = embedded_server
    started = await server.wait_for_event("server.started")
    async with grpc.aio.insecure_channel(str(started["address"])) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        rest = []
        while (response := await watch.read()) is not grpc.aio.EOF:
            rest.append(response.status)
        assert rest == [health_pb2.HealthCheckResponse.NOT_SERVING]
        assert await watch.code() == grpc.StatusCode.OK

        code, stderr = await server.finish(timeout=GRACE_SECONDS + 10)
        assert code == 0, stderr
        assert time.monotonic() - signalled < GRACE_SECONDS + 5
    names = [event.get("event") for event in server.events]
    assert names.index("server.stopping") < names.index("server.stopped")
    assert "embedded_postgres.stopped" in names
    assert not EmbeddedPostgres(data_dir, 1).is_running()


async def test_embedded_default_creates_roles_and_serves_as_the_restricted_role(
    embedded_server: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = embedded_server
    started = await server.wait_for_event("server.started")
    embedded = await server.wait_for_event("database.embedded")
    assert embedded["app_role"] == "chatbot_app"
    credentials = json.loads((data_dir / "credentials.json").read_text())
    assert (data_dir / "credentials.json").stat().st_mode & 0o077 == 0
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=int(str(embedded["port"])),
        user="chatbot_app",
        password=credentials["app"],
        database="chatbot",
    )
    try:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
        assert tuple(role) == (False, False, False)
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        shared_buffers_mb = await conn.fetchval(
            "SELECT setting::int * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'"
        )
        assert shared_buffers_mb == DatabaseSettings().embedded_shared_buffers_mb
    finally:
        await conn.close()
    async with grpc.aio.insecure_channel(str(started["address"])) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_database_without_pgvector_stops_the_server_with_instructions(
    database: MigratedDatabase,
) -> None:
    admin = await asyncpg.connect(database.superuser_url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS chatbot_bare")
        await admin.execute("CREATE DATABASE chatbot_bare")
    finally:
        await admin.close()
    server = ServerProcess(
        {
            "DATABASE_URL": with_database(database.superuser_url, "chatbot_bare"),
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        }
    )
    await server.start()
    code, stderr = await server.finish(timeout=60)
    assert code == 2
    assert "`vector` extension is missing from database chatbot_bare" in stderr
    assert "CREATE EXTENSION vector;" in stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SHUTDOWN_GRACE_SECONDS", "soon", "SHUTDOWN_GRACE_SECONDS must be a number"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, console"),
        ("METRICS_ADDRESS", "9464", "METRICS_ADDRESS must be host:port"),
    ],
)
async def test_malformed_setting_stops_the_server_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    server = ServerProcess({variable: value})
    await server.start()
    code, stderr = await server.finish(timeout=60)
    assert code == 2
    assert message in stderr


async def test_a_second_server_in_the_same_folder_leaves_the_first_serving(
    embedded_server: tuple[ServerProcess, Path],
) -> None:
    first, data_dir = embedded_server
    started = await first.wait_for_event("server.started")
    second = ServerProcess({**{k: first.env[k] for k in _SAME_PLACE}, "DATABASE_URL": ""})
    await second.start()
    code, stderr = await second.finish(timeout=60)
    assert code == 2
    assert "cannot listen on GRPC_ADDRESS" in stderr and "Traceback" not in stderr
    async with grpc.aio.insecure_channel(str(started["address"])) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert EmbeddedPostgres(data_dir, 1).is_running()


_SAME_PLACE = ("GRPC_ADDRESS", "EMBEDDED_POSTGRES_DIR", "EMBEDDED_POSTGRES_PORT", "REDIS_URL")


async def test_ctrl_c_stops_the_server_and_its_extraction_process_quietly() -> None:
    async with server_on_embedded_defaults(1, own_process_group=True) as (server, _):
        await server.wait_for_event("server.started")
        assert server.process is not None
        # The ingestion worker's extraction process runs from the start (warm-up).
        await asyncio.sleep(1)
        os.killpg(server.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code, stderr = await server.finish(timeout=30)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "server.stopped" in [event.get("event") for event in server.events]


async def test_a_server_restarted_at_once_after_ctrl_c_with_clients_connected_serves() -> None:
    async with server_on_embedded_defaults(1, own_process_group=True) as (server, _):
        started = await server.wait_for_event("server.started")
        address = str(started["address"])
        channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
        try:
            # Open streams: the server closes their connections, which leaves them in
            # TIME_WAIT on its port.
            watches = [
                health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
                for channel in channels
            ]
            for watch in watches:
                assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            assert server.process is not None
            # Ctrl-C reaches the embedded PostgreSQL too, which starts shutting down at once.
            os.killpg(server.process.pid, signal.SIGINT)
            code, stderr = await server.finish(timeout=30)
            assert code == 0, stderr
        finally:
            for channel in channels:
                await channel.close()
        again = ServerProcess(server.env, own_process_group=True)
        await again.start()
        try:
            restarted = await again.wait_for_event("server.started", timeout=30)
            assert restarted["address"] == address
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await again.kill()


async def test_a_taken_metrics_port_stops_the_server_with_one_line(
    database: MigratedDatabase,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(
            {
                "DATABASE_URL": database.app_url,
                "REDIS_URL": "",
                "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
                "METRICS_ADDRESS": f"127.0.0.1:{port}",
            }
        )
        await server.start()
        code, stderr = await server.finish(timeout=60)
    assert code == 2
    assert f"cannot listen on METRICS_ADDRESS 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr
