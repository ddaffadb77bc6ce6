"""grpc.health.v1 as a load balancer sees it, including dependency outages."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot_server.services import SERVICE_NAMES
from tests.databases import create_test_database, new_embedded_cluster
from tests.polling import eventually
from tests.redis_servers import RedisServer
from tests.servers import RunningServer, server_settings, start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def test_overall_and_every_service_are_serving(channel: grpc.aio.Channel) -> None:
    for service in ("", *SERVICE_NAMES):
        assert await check(channel, service) == SERVING, service


async def test_list_reports_every_service(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.List(health_pb2.HealthListRequest(), timeout=5)
    assert set(response.statuses) == {"", *SERVICE_NAMES}
    assert all(status.status == SERVING for status in response.statuses.values())


async def test_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check(channel, "chatbot.v1.NoSuchService")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest_asyncio.fixture
async def outage_server() -> AsyncIterator[tuple[RunningServer, object, RedisServer]]:
    """A server on a PostgreSQL cluster and a Redis of its own, so the test may stop them."""
    cluster = new_embedded_cluster()
    redis_server = RedisServer()
    redis_server.start()
    database = await create_test_database(cluster.superuser_url(), "chatbot_outage")
    running = await start_server(server_settings(database.app_url, redis_server.url))
    try:
        yield running, cluster, redis_server
    finally:
        await running.stop()
        redis_server.stop()
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


async def test_not_serving_while_database_is_down_and_serving_when_back(
    outage_server: tuple[RunningServer, object, RedisServer],
) -> None:
    running, cluster, _ = outage_server
    async with grpc.aio.insecure_channel(running.address) as channel:
        assert await check(channel) == SERVING

        cluster.stop()  # type: ignore[attr-defined]
        await eventually(lambda: _has_status(channel, NOT_SERVING))
        assert await check(channel, "chatbot.v1.ChatService") == NOT_SERVING
        # Out of rotation, but alive: a liveness probe must not restart it.
        assert await check(channel, "liveness") == SERVING

        cluster.start()  # type: ignore[attr-defined]
        await eventually(lambda: _has_status(channel, SERVING))
        assert await check(channel, "chatbot.v1.DocumentService") == SERVING


async def test_not_serving_while_redis_is_down_and_serving_when_back(
    outage_server: tuple[RunningServer, object, RedisServer],
) -> None:
    running, _, redis_server = outage_server
    async with grpc.aio.insecure_channel(running.address) as channel:
        assert await check(channel) == SERVING
        redis_server.stop()
        await eventually(lambda: _has_status(channel, NOT_SERVING))
        redis_server.start()
        await eventually(lambda: _has_status(channel, SERVING))


async def test_watch_streams_status_changes(
    outage_server: tuple[RunningServer, object, RedisServer],
) -> None:
    running, _, redis_server = outage_server
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service="chatbot.v1.ChatService"))
        seen = [(await call.read()).status]
        redis_server.stop()
        seen.append((await call.read()).status)
        redis_server.start()
        seen.append((await call.read()).status)
        call.cancel()
    assert seen == [SERVING, NOT_SERVING, SERVING]


async def _has_status(channel: grpc.aio.Channel, expected: int) -> bool:
    return await check(channel) == expected
