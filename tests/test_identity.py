"""API keys and roles, as callers and operators meet them through gRPC and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2_grpc, document_service_pb2_grpc
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import document_service_pb2 as documents_pb
from chatbot_client import ChatbotClient
from tests.databases import MigratedDatabase, create_test_database
from tests.governance_support import new_key, with_key
from tests.pdfs import text_pdf
from tests.polling import eventually
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server

# Short enough for a test to see a revocation reach another replica.
KEY_CACHE_SECONDS = 0.5


@pytest_asyncio.fixture(scope="module")
async def identity_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_identity")


@pytest_asyncio.fixture(scope="module")
async def identity_server(
    identity_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    settings = server_settings(
        identity_database.app_url, redis_url, API_KEY_CACHE_SECONDS=str(KEY_CACHE_SECONDS)
    )
    running = await start_server(settings)
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def identity_channel(identity_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(identity_server.address) as opened:
        yield opened


async def test_unknown_and_malformed_keys_are_unauthenticated(
    identity_channel: grpc.aio.Channel,
) -> None:
    chat = chat_service_pb2_grpc.ChatServiceStub(identity_channel)
    for metadata in (
        with_key("cbk_not-a-key-anyone-made"),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("x-api-key", ""),),
        (("authorization", "Bearer one"), ("x-api-key", "two")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.ListConversations(
                chat_pb.ListConversationsRequest(), metadata=metadata, timeout=5
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert error_info(raised.value).reason == "INVALID_API_KEY"


async def test_client_key_cannot_call_admin_service_and_admin_key_can(
    identity_database: MigratedDatabase, identity_channel: grpc.aio.Channel
) -> None:
    _, client_secret = await new_key(identity_database.app_url, "frontend", "client")
    _, admin_secret = await new_key(identity_database.app_url, "ops", "admin")
    admin = admin_service_pb2_grpc.AdminServiceStub(identity_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin.GetBudgetStatus(
            admin_pb.GetBudgetStatusRequest(), metadata=with_key(client_secret), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(raised.value)
    assert (info.reason, info.metadata["role"]) == ("ADMIN_REQUIRED", "client")

    status = await admin.GetBudgetStatus(
        admin_pb.GetBudgetStatusRequest(), metadata=(("x-api-key", admin_secret),), timeout=5
    )
    assert status.budget.scope == "global"
    assert status.budget.budget_usd == 50.0


async def test_conversations_belong_to_the_key_that_made_them(
    identity_database: MigratedDatabase, identity_channel: grpc.aio.Channel
) -> None:
    _, alice = await new_key(identity_database.app_url, "alice", "client")
    _, bob = await new_key(identity_database.app_url, "bob", "client")
    chat = chat_service_pb2_grpc.ChatServiceStub(identity_channel)
    created = await chat.CreateConversation(
        chat_pb.CreateConversationRequest(title="alice's"), metadata=with_key(alice), timeout=5
    )
    conversation_id = created.conversation.conversation_id

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await chat.GetConversation(
            chat_pb.GetConversationRequest(conversation_id=conversation_id),
            metadata=with_key(bob),
            timeout=5,
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(raised.value).reason == "CONVERSATION_NOT_OWNED"
    # Neither another key nor an anonymous caller lists it.
    for metadata in (with_key(bob), ()):
        listed = await chat.ListConversations(
            chat_pb.ListConversationsRequest(), metadata=metadata, timeout=5
        )
        assert conversation_id not in [c.conversation_id for c in listed.conversations]
    own = await chat.ListConversations(
        chat_pb.ListConversationsRequest(), metadata=with_key(alice), timeout=5
    )
    assert [c.conversation_id for c in own.conversations] == [conversation_id]


async def test_revoked_key_is_refused_on_every_replica_within_the_cache_period(
    identity_database: MigratedDatabase,
    identity_channel: grpc.aio.Channel,
    identity_server: RunningServer,
) -> None:
    key_id, secret = await new_key(identity_database.app_url, "soon-revoked", "client")
    _, admin_secret = await new_key(identity_database.app_url, "revoker", "admin")
    chat = chat_service_pb2_grpc.ChatServiceStub(identity_channel)
    await chat.ListConversations(chat_pb.ListConversationsRequest(), metadata=with_key(secret))

    # Revoked through another replica: this one only learns it from the database.
    other = await start_server(
        server_settings(identity_database.app_url, None, API_KEY_CACHE_SECONDS="0.5")
    )
    try:
        async with grpc.aio.insecure_channel(other.address) as other_channel:
            revoked = await admin_service_pb2_grpc.AdminServiceStub(other_channel).RevokeApiKey(
                admin_pb.RevokeApiKeyRequest(api_key_id=key_id),
                metadata=with_key(admin_secret),
                timeout=5,
            )
            assert revoked.api_key.revoked
    finally:
        await other.stop()
    revoked_at = asyncio.get_running_loop().time()

    async def refused() -> grpc.aio.AioRpcError | None:
        try:
            await chat.ListConversations(
                chat_pb.ListConversationsRequest(), metadata=with_key(secret), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error
        return None

    error = await eventually(refused, timeout=10 * KEY_CACHE_SECONDS)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "INVALID_API_KEY"
    # Generous against a slow machine, yet far below "until restart".
    assert asyncio.get_running_loop().time() - revoked_at < 10 * KEY_CACHE_SECONDS


async def test_without_anonymous_access_a_key_is_required_and_documents_need_an_admin(
    identity_database: MigratedDatabase, redis_url: str
) -> None:
    _, client_secret = await new_key(identity_database.app_url, "uploader", "client")
    running = await start_server(
        server_settings(identity_database.app_url, redis_url, ALLOW_ANONYMOUS="false")
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            documents = document_service_pb2_grpc.DocumentServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await documents.ListDocuments(documents_pb.ListDocumentsRequest(), timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(raised.value).reason == "API_KEY_REQUIRED"

            listed = await documents.ListDocuments(
                documents_pb.ListDocumentsRequest(), metadata=with_key(client_secret), timeout=5
            )
            assert listed.total_size == 0
            for call in (
                documents.DeleteDocument(
                    documents_pb.DeleteDocumentRequest(document_id=str(os.urandom(0).hex())),
                    metadata=with_key(client_secret),
                    timeout=5,
                ),
                documents.ReprocessAllDocuments(
                    documents_pb.ReprocessAllDocumentsRequest(),
                    metadata=with_key(client_secret),
                    timeout=5,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert error_info(raised.value).reason == "ADMIN_REQUIRED"
            # Load balancers probe without a key.
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop()


async def test_keys_create_command_prints_the_secret_last_and_stores_only_its_hash(
    identity_database: MigratedDatabase, identity_channel: grpc.aio.Channel
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatbot_server", "keys", "create",
        "--name", "billing-service", "--role", "client", "--daily-budget-usd", "2.5",
        env={**os.environ, "DATABASE_URL": identity_database.app_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    secret = stdout.decode().strip().splitlines()[-1]
    assert secret.startswith("cbk_") and " " not in secret

    conn = await asyncpg.connect(identity_database.app_url)
    try:
        stored = await conn.fetchrow("SELECT * FROM api_keys WHERE name = 'billing-service'")
    finally:
        await conn.close()
    assert secret not in [str(value) for value in stored.values()]
    assert stored["daily_budget_micro_usd"] == 2_500_000

    chat = chat_service_pb2_grpc.ChatServiceStub(identity_channel)
    listed = await chat.ListConversations(
        chat_pb.ListConversationsRequest(), metadata=with_key(secret), timeout=5
    )
    assert list(listed.conversations) == []


async def test_the_client_library_sends_its_key_on_every_kind_of_call(
    identity_database: MigratedDatabase, redis_url: str
) -> None:
    _, secret = await new_key(identity_database.app_url, "library-user", "client")
    running = await start_server(
        server_settings(
            identity_database.app_url, redis_url, ALLOW_ANONYMOUS="false", INGESTION_WORKERS="0"
        )
    )
    try:
        async with ChatbotClient(running.address, api_key=secret) as client:
            uploaded = await client.upload_document(
                text_pdf(["Keyed upload."]), title="keyed"
            )  # stream-unary
            assert uploaded.document.document_id
            answer = await client.answer("Is anything uploaded?")  # unary-stream
            assert answer.started is not None
            conversation_id = answer.started.conversation_id
            listed = [c.conversation_id async for c in client.list_conversations()]  # unary
            assert conversation_id in listed
    finally:
        await running.stop()
