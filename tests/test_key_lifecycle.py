"""Keys that expire and rotate, and key guessing refused per peer, through gRPC and the
operator's commands."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from prometheus_client import REGISTRY

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import chat_service_pb2_grpc
from chatbot_client import ChatbotClient
from chatbot_client.errors import ChatbotError
from tests.databases import MigratedDatabase, create_test_database
from tests.governance_support import new_key, with_key
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server

FAILURE_LIMIT = 5


@pytest_asyncio.fixture(scope="module")
async def keys_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_key_lifecycle")


@pytest_asyncio.fixture(scope="module")
async def keys_server(
    keys_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    settings = server_settings(
        keys_database.app_url,
        redis_url,
        AUTH_FAILURE_LIMIT=f"{FAILURE_LIMIT}/minute",
        # Forwarded addresses are believed from loopback: each test guesses from its own.
        TRUSTED_PROXIES="127.0.0.0/8",
    )
    running = await start_server(settings)
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def admin(
    keys_server: RunningServer, keys_database: MigratedDatabase
) -> AsyncIterator[ChatbotClient]:
    _, secret = await new_key(keys_database.app_url, "ops", "admin")
    async with ChatbotClient(keys_server.address, api_key=secret, timeout=10) as client:
        yield client


async def _list(address: str, secret: str, peer: str = "198.51.100.1") -> None:
    """One authenticated call, as if from `peer` behind the edge."""
    async with grpc.aio.insecure_channel(address) as channel:
        chat = chat_service_pb2_grpc.ChatServiceStub(channel)
        await chat.ListConversations(
            chat_pb.ListConversationsRequest(),
            metadata=(*with_key(secret), ("x-forwarded-for", peer)),
            timeout=5,
        )


async def _refusal(address: str, secret: str, peer: str = "198.51.100.1") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _list(address, secret, peer)
    return raised.value


async def test_a_key_stops_working_when_it_expires_and_says_when(
    keys_server: RunningServer, admin: ChatbotClient
) -> None:
    created = await admin.create_api_key(
        "short-lived", admin_pb.API_KEY_ROLE_CLIENT, expires_in=timedelta(seconds=2)
    )
    expires = created.api_key.expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=3)
    await _list(keys_server.address, created.secret)

    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    refused = await _refusal(keys_server.address, created.secret)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(refused)
    assert info.reason == "API_KEY_EXPIRED"
    when = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert info.metadata["expire_time"] == when
    assert f"expired at {when}" in (refused.details() or "")


async def test_a_rotated_key_accepts_both_secrets_for_the_overlap_then_only_the_new(
    keys_server: RunningServer, admin: ChatbotClient
) -> None:
    created = await admin.create_api_key("rotating", admin_pb.API_KEY_ROLE_CLIENT)
    key_id, old = created.api_key.api_key_id, created.secret
    rotated = await admin.rotate_api_key(key_id, overlap=timedelta(seconds=2))
    new = rotated.secret
    assert new != old and rotated.api_key.prefix == new[: len(rotated.api_key.prefix)]
    assert rotated.api_key.HasField("previous_secret_expire_time")
    await _list(keys_server.address, old)
    await _list(keys_server.address, new)

    await asyncio.sleep(2.5)
    refused = await _refusal(keys_server.address, old)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(refused).reason == "API_KEY_ROTATED"
    await _list(keys_server.address, new)


async def test_rotating_a_revoked_key_is_refused_and_bad_spans_are_invalid(
    admin: ChatbotClient,
) -> None:
    created = await admin.create_api_key("gone", admin_pb.API_KEY_ROLE_CLIENT)
    await admin.revoke_api_key(created.api_key.api_key_id)
    with pytest.raises(ChatbotError) as raised:
        await admin.rotate_api_key(created.api_key.api_key_id)
    assert (raised.value.code, raised.value.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "API_KEY_REVOKED",
    )
    with pytest.raises(ChatbotError) as raised:
        await admin.create_api_key(
            "never", admin_pb.API_KEY_ROLE_CLIENT, expires_in=timedelta(days=5000)
        )
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    for overlap in (Duration(seconds=-1), Duration(seconds=10**18)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.admin.RotateApiKey(
                admin_pb.RotateApiKeyRequest(api_key_id=created.api_key.api_key_id,
                                             overlap=overlap), timeout=5,
            )  # fmt: skip
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(refused.value).reason == "INVALID_ARGUMENT"


async def test_keys_commands_create_with_an_expiry_and_rotate_with_an_overlap(
    keys_server: RunningServer, keys_database: MigratedDatabase
) -> None:
    env = {**os.environ, "DATABASE_URL": keys_database.app_url}

    async def keys(*args: str) -> list[str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatbot_server", "keys", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        return stdout.decode().strip().splitlines()

    created = await keys("create", "--name", "nightly", "--role", "client", "--expires-in", "90d")
    expected = (datetime.now(UTC) + timedelta(days=90)).strftime("%Y-%m-%d")
    assert f"expires {expected}" in created[0]
    key_id, first = created[0].split()[0], created[-1]
    rotated = await keys("rotate", key_id, "--overlap", "0s")
    second = rotated[-1]
    assert "old secret until" in rotated[0] and second != first
    await _list(keys_server.address, second)
    refused = await _refusal(keys_server.address, first)
    assert error_info(refused).reason == "API_KEY_ROTATED"


async def test_random_keys_from_one_peer_are_refused_before_any_lookup(
    keys_server: RunningServer, keys_database: MigratedDatabase
) -> None:
    peer = "203.0.113.7"
    reads = "chatbot_api_key_reads_total"
    before = REGISTRY.get_sample_value(reads, {"found": "false"}) or 0
    codes = []
    for _ in range(500):
        refused = await _refusal(keys_server.address, "cbk_" + secrets.token_urlsafe(32), peer)
        codes.append(refused.code())
    read = (REGISTRY.get_sample_value(reads, {"found": "false"}) or 0) - before
    # The first failures are read and refused as unknown; then the peer is refused unread.
    assert codes[:FAILURE_LIMIT] == [grpc.StatusCode.UNAUTHENTICATED] * FAILURE_LIMIT
    assert set(codes[FAILURE_LIMIT:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert read == FAILURE_LIMIT
    refused = await _refusal(keys_server.address, "cbk_" + secrets.token_urlsafe(32), peer)
    info = error_info(refused)
    assert (info.reason, info.metadata["limit"]) == ("RATE_LIMITED", "auth_failures")

    # A valid key from that peer waits too; from another peer it works.
    _, valid = await new_key(keys_database.app_url, "honest", "client")
    assert (await _refusal(keys_server.address, valid, peer)).code() == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    await _list(keys_server.address, valid, "203.0.113.8")
