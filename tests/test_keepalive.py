"""Keepalive: clients that ping often, as many are configured to, keep their connection."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.servers import RunningServer


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
