"""Keepalive: clients that ping often, as many are configured to, keep their connection."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1.document_service_pb2 import ListDocumentsRequest
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from tests.conftest import LogSink
from tests.databases import MigratedDatabase
from tests.servers import RunningServer, server_settings, start_server


async def test_a_client_pinging_every_second_is_not_sent_away(server: RunningServer) -> None:
    options = [
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(server.address, options=options) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        states = []
        # grpc's default policy sent GOAWAY too_many_pings after the third ping (~3 s), and
        # the channel fell back to IDLE.
        for _ in range(12):
            await asyncio.sleep(0.5)
            states.append(channel.get_state())
    assert set(states) == {grpc.ChannelConnectivity.READY}, states


async def test_an_old_connection_is_replaced_and_its_stream_finishes(
    database: MigratedDatabase, redis_url: str, log_sink: LogSink
) -> None:
    settings = server_settings(
        database.app_url,
        redis_url,
        GRPC_MAX_CONNECTION_AGE_SECONDS="1",
        GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS="10",
    )
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            documents = DocumentServiceStub(channel)
            first = await _peer_of_a_call(documents, log_sink)
            await asyncio.sleep(2.5)
            second = await _peer_of_a_call(documents, log_sink)
            # The stream opened on the old connection is still open within its grace.
            assert not watch.done()
            watch.cancel()
    finally:
        await running.stop()
    assert first != second


async def _peer_of_a_call(documents: DocumentServiceStub, log_sink: LogSink) -> str:
    """The client address and port the server saw for one call."""
    before = len(log_sink.events("rpc.finished"))
    await documents.ListDocuments(ListDocumentsRequest(), timeout=5)
    finished = log_sink.events("rpc.finished")[before:]
    return str(finished[-1]["peer"])
