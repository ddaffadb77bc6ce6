"""Rate limits: exact sliding windows in Redis (shared by every server) or in one process,
as callers see them through gRPC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2_grpc
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot_client import ChatbotClient
from chatbot_client.errors import (
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from chatbot_server.config import Rate, parse_rate
from chatbot_server.governance.rate_limit_rules import Limit
from chatbot_server.governance.rate_limiter import (
    InProcessRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from chatbot_server.platform.redis_connection import connect_redis
from tests.conftest import LogSink
from tests.databases import MigratedDatabase, create_test_database, free_port
from tests.governance_support import new_key, with_key
from tests.processes import ServerProcess
from tests.redis_servers import RedisServer
from tests.rpc_errors import detail, error_info
from tests.servers import server_settings, start_server

LIMITED = {
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_ANONYMOUS": "100/minute",
    # Wide enough that the anonymous limit is the one these tests reach.
    "RATE_LIMIT_BURST": "1000/second",
}


def test_rates_read_as_the_old_system_wrote_them() -> None:
    assert parse_rate("100/minute") == Rate(100, 60)
    assert parse_rate("1000/hour") == Rate(1000, 3600)
    assert parse_rate("20/second") == Rate(20, 1)
    assert parse_rate("5 / 10 minutes") == Rate(5, 600)
    assert str(parse_rate("50/minute")) == "50/minute"
    for bad in ("100", "0/minute", "ten/minute", "5/fortnight"):
        with pytest.raises(ValueError):
            parse_rate(bad)


@pytest_asyncio.fixture(params=["redis", "in-process"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateLimiter]:
    if request.param == "in-process":
        yield InProcessRateLimiter()
        return
    client = connect_redis(redis_url, 2.0)
    yield RedisRateLimiter(client)
    await client.aclose()


async def test_a_refused_call_is_counted_against_no_limit(limiter: RateLimiter) -> None:
    identity = f"test:{uuid.uuid4()}"
    wide, narrow = Limit("wide", Rate(10, 60)), Limit("narrow", Rate(2, 60))
    admitted = [await limiter.acquire(identity, [wide, narrow]) for _ in range(4)]
    assert [d.allowed for d in admitted] == [True, True, False, False]
    # The wide limit counted only the two admitted calls.
    wide_only = await limiter.acquire(identity, [wide])
    assert wide_only.allowed
    assert wide_only.states[0].remaining == 10 - 3
    refused = admitted[-1].tightest()
    assert refused.limit == narrow
    assert 59 < refused.retry_after_seconds <= 60


async def test_concurrent_calls_against_a_limit_of_50_admit_exactly_50(
    limiter: RateLimiter,
) -> None:
    identity = f"test:{uuid.uuid4()}"
    limits = [Limit("chat", Rate(50, 60))]
    decisions = await asyncio.gather(*(limiter.acquire(identity, limits) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50


async def test_clearing_an_identity_forgets_only_its_counts(limiter: RateLimiter) -> None:
    first, second = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
    limits = [Limit("one", Rate(1, 60))]
    for identity in (first, second):
        assert (await limiter.acquire(identity, limits)).allowed
    assert await limiter.clear(first) == 1
    assert (await limiter.acquire(first, limits)).allowed
    assert not (await limiter.acquire(second, limits)).allowed


async def test_the_window_slides(limiter: RateLimiter) -> None:
    identity = f"test:{uuid.uuid4()}"
    limits = [Limit("fast", Rate(2, 1))]
    assert all([(await limiter.acquire(identity, limits)).allowed for _ in range(2)])
    refused = await limiter.acquire(identity, limits)
    assert not refused.allowed
    await asyncio.sleep(refused.tightest().retry_after_seconds + 0.05)
    assert (await limiter.acquire(identity, limits)).allowed


@pytest_asyncio.fixture(scope="module")
async def limits_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_limits")


@pytest_asyncio.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A Redis of the test's own, which it may stop and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def _list(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """ListConversations, a cheap limited call; returns the finished call."""
    stub = chat_service_pb2_grpc.ChatServiceStub(channel)
    call = stub.ListConversations(chat_pb.ListConversationsRequest(), metadata=metadata, timeout=5)
    await call
    return call


async def test_the_101st_anonymous_call_in_a_minute_is_refused_with_details(
    limits_database: MigratedDatabase, own_redis: RedisServer
) -> None:
    refusals = "chatbot_rate_limit_refusals_total"
    refused_before = REGISTRY.get_sample_value(refusals, {"limit": "anonymous"}) or 0
    running = await start_server(server_settings(limits_database.app_url, own_redis.url, **LIMITED))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            for number in range(1, 101):
                call = await _list(channel)
                headers = dict(await call.initial_metadata())
                assert headers["x-ratelimit-limit"] == "100"
                assert headers["x-ratelimit-remaining"] == str(100 - number)
                assert 0 < int(headers["x-ratelimit-reset"]) <= 60
                assert headers["x-ratelimit-identity"] == "ip:127.0.0.1"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _list(channel)
    finally:
        await running.stop()
    error = raised.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert info.reason == "RATE_LIMITED"
    assert (info.metadata["limit"], info.metadata["rate"]) == ("anonymous", "100/minute")
    retry = detail(error, error_details_pb2.RetryInfo).retry_delay
    assert 0 < retry.seconds + retry.nanos / 1e9 <= 60
    quota = detail(error, error_details_pb2.QuotaFailure)
    assert [v.subject for v in quota.violations] == ["ip:127.0.0.1:anonymous"]
    trailing = dict(error.trailing_metadata() or ())
    assert trailing["x-ratelimit-remaining"] == "0"
    assert 0 < int(trailing["retry-after"]) <= 60
    assert REGISTRY.get_sample_value(refusals, {"limit": "anonymous"}) == refused_before + 1


async def test_two_server_processes_admit_exactly_the_limit_between_them(
    limits_database: MigratedDatabase, own_redis: RedisServer
) -> None:
    _, secret = await new_key(limits_database.app_url, "shared", "client", rate_limit="50/minute")
    here = await start_server(server_settings(limits_database.app_url, own_redis.url, **LIMITED))
    elsewhere = ServerProcess(
        {
            **LIMITED,
            "DATABASE_URL": limits_database.app_url,
            "REDIS_URL": own_redis.url,
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "INGESTION_WORKERS": "0",
        }
    )
    await elsewhere.start()
    try:
        started = await elsewhere.wait_for_event("server.started")
        async with (
            grpc.aio.insecure_channel(here.address) as one,
            grpc.aio.insecure_channel(str(started["address"])) as two,
        ):

            async def attempt(channel: grpc.aio.Channel) -> bool:
                try:
                    await _list(channel, with_key(secret))
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    return False
                return True

            outcomes = await asyncio.gather(*(attempt(c) for c in [one, two] * 100))
    finally:
        await here.stop()
        await elsewhere.kill()
    assert sum(outcomes) == 50


async def test_redis_outage_follows_the_failure_mode_and_limits_return_with_it(
    limits_database: MigratedDatabase, own_redis: RedisServer, log_sink: LogSink
) -> None:
    tight = {**LIMITED, "RATE_LIMIT_ANONYMOUS": "3/minute"}
    open_server = await start_server(
        server_settings(limits_database.app_url, own_redis.url, **tight)
    )
    closed_server = await start_server(
        server_settings(
            limits_database.app_url, own_redis.url, **tight, RATE_LIMIT_REDIS_FAILURE="closed"
        )
    )
    try:
        async with (
            grpc.aio.insecure_channel(open_server.address) as open_channel,
            grpc.aio.insecure_channel(closed_server.address) as closed_channel,
        ):
            own_redis.stop()
            outages_before = len(log_sink.events("rate_limit.redis_unreachable"))
            # Fail open: served beyond the limit, the outage logged once per server.
            for _ in range(5):
                await _list(open_channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _list(closed_channel)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(raised.value).reason == "RATE_LIMITER_UNAVAILABLE"
            assert len(log_sink.events("rate_limit.redis_unreachable")) - outages_before == 2

            own_redis.start()
            await asyncio.sleep(1.1)  # the limiter retries Redis a second after a failure
            for _ in range(3):
                await _list(open_channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _list(open_channel)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await open_server.stop()
        await closed_server.stop()


async def test_admin_clears_rate_limits_of_one_identity(
    limits_database: MigratedDatabase, own_redis: RedisServer
) -> None:
    _, admin_secret = await new_key(limits_database.app_url, "limits-admin", "admin")
    tight = {**LIMITED, "RATE_LIMIT_ANONYMOUS": "2/minute"}
    running = await start_server(server_settings(limits_database.app_url, own_redis.url, **tight))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            for _ in range(2):
                await _list(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await _list(channel)
            cleared = await admin_service_pb2_grpc.AdminServiceStub(channel).ClearRateLimits(
                admin_pb.ClearRateLimitsRequest(identity="ip:127.0.0.1"),
                metadata=with_key(admin_secret),
                timeout=5,
            )
            assert cleared.cleared_count >= 1
            await _list(channel)
    finally:
        await running.stop()


async def test_without_redis_limits_are_kept_in_process_and_that_is_logged(
    limits_database: MigratedDatabase, log_sink: LogSink
) -> None:
    tight = {**LIMITED, "RATE_LIMIT_ANONYMOUS": "2/minute"}
    running = await start_server(server_settings(limits_database.app_url, None, **tight))
    try:
        assert log_sink.events("rate_limit.in_process")
        async with grpc.aio.insecure_channel(running.address) as channel:
            for _ in range(2):
                await _list(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _list(channel)
            assert error_info(raised.value).reason == "RATE_LIMITED"
    finally:
        await running.stop()


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=60),
    count=st.integers(min_value=1, max_value=5),
    window=st.integers(min_value=1, max_value=4),
)
def test_a_sliding_window_admits_exactly_what_fits(
    gaps: list[float], count: int, window: int
) -> None:
    """At every moment, a call is admitted if and only if fewer than `count` admitted calls
    lie in the window before it; the promised retry delay is exactly when one leaves."""
    now = [0.0]
    limiter = InProcessRateLimiter(clock=lambda: now[0])
    limits = [Limit("x", Rate(count, window))]
    admitted: list[float] = []
    for gap in gaps:
        now[0] += gap
        decision = asyncio.run(limiter.acquire("p", limits))
        in_window = [t for t in admitted if t > now[0] - window]
        assert decision.allowed == (len(in_window) < count)
        if decision.allowed:
            admitted.append(now[0])
            assert decision.states[0].remaining == count - len(in_window) - 1
        else:
            oldest_blocking = in_window[len(in_window) - count]
            assert decision.states[0].retry_after_seconds == pytest.approx(
                oldest_blocking + window - now[0]
            )


async def test_the_client_library_raises_each_refusal_as_its_error_class(
    limits_database: MigratedDatabase, own_redis: RedisServer
) -> None:
    strict = server_settings(
        limits_database.app_url, own_redis.url, ALLOW_ANONYMOUS="false",
        RATE_LIMIT_ENABLED="true", RATE_LIMIT_AUTHENTICATED="2/minute",
        RATE_LIMIT_BURST="1000/second",
    )  # fmt: skip
    running = await start_server(strict)
    _, secret = await new_key(limits_database.app_url, "error-classes", "client")
    try:
        async with ChatbotClient(running.address) as anonymous:
            with pytest.raises(UnauthenticatedError) as unauthenticated:
                await anonymous.search("anything")
        assert unauthenticated.value.reason == "API_KEY_REQUIRED"
        async with ChatbotClient(running.address, api_key=secret) as client:
            with pytest.raises(PermissionDeniedError) as denied:
                await client.budget_status()
            assert denied.value.reason == "ADMIN_REQUIRED"
            await client.search("one")
            await client.search("two")
            with pytest.raises(ResourceExhaustedError) as limited:
                await client.search("three")
    finally:
        await running.stop()
    error = limited.value
    assert error.reason == "RATE_LIMITED" and error.domain == "chatbot.v1"
    assert error.metadata["limit"] == "authenticated"
    assert error.retry_delay is not None and 0 < error.retry_delay <= 60
    (violation,) = error.quota_violations
    assert violation.subject.endswith(":authenticated") and violation.description
    async with ChatbotClient("127.0.0.1:1", timeout=2) as nowhere:
        with pytest.raises(UnavailableError) as unavailable:
            await nowhere.get_document("00000000-0000-4000-8000-000000000000")
    assert unavailable.value.reason == ""  # no server, so no details: the transport's error
