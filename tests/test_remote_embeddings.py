"""Embeddings from an OpenAI-compatible endpoint (a fake one on loopback), cost-logged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_client.errors import UnavailableError
from chatbot_server.answers.fake_openai import Failure, FakeOpenAI
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import manual_pdf, truncate_documents
from tests.pdfs import text_pdf
from tests.servers import RunningServer, server_settings, start_server


@pytest_asyncio.fixture(scope="module")
async def remote_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_remote_embeddings")


@pytest_asyncio.fixture
async def remote(
    remote_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[tuple[RunningServer, FakeOpenAI]]:
    await truncate_documents(remote_database.owner_url)
    fake = FakeOpenAI()
    await fake.start()
    settings = server_settings(
        remote_database.app_url,
        redis_url,
        EMBEDDING_BASE_URL=fake.base_url,
        EMBEDDING_API_KEY="sk-test-key",
        EMBEDDING_MODEL="openai/text-embedding-3-small",
    )
    running = await start_server(settings)
    yield running, fake
    await running.stop()
    await fake.stop()


async def cost_rows(database: MigratedDatabase) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database.owner_url)
    try:
        return await conn.fetch(
            "SELECT method, embedding_model, prompt_tokens, cost_micro_usd, cost_source, "
            "error_type FROM answer_logs ORDER BY created_at"
        )
    finally:
        await conn.close()


async def test_documents_are_embedded_remotely_in_the_stores_dimension_and_cost_logged(
    remote: tuple[RunningServer, FakeOpenAI], remote_database: MigratedDatabase
) -> None:
    running, fake = remote
    async with ChatbotClient(running.address) as client:
        uploaded = await client.upload_document(manual_pdf(), title="Remote")
        ready = await asyncio.wait_for(client.wait_for_document(uploaded.document.document_id), 60)
        assert ready.status == pb.DOCUMENT_STATUS_READY, ready.error
        assert ready.embedding_model == "openai/text-embedding-3-small"

        found = await client.search("netmask gateway static address")
        assert found.embedding_model == "openai/text-embedding-3-small"
        assert found.results[0].page_number == 2

    embedding_calls = [r for r in fake.requests if r.path == "/v1/embeddings"]
    assert embedding_calls
    assert all(r.headers["authorization"] == "Bearer sk-test-key" for r in embedding_calls)
    assert all(r.json()["dimensions"] == 384 for r in embedding_calls)

    rows = await cost_rows(remote_database)
    assert {r["method"] for r in rows} == {
        "ingestion/embeddings", "/chatbot.v1.DocumentService/Search",
    }  # fmt: skip
    assert len(rows) == len(embedding_calls)
    assert all(r["cost_source"] == "pricing_table" and r["prompt_tokens"] > 0 for r in rows)
    assert all(r["cost_micro_usd"] >= 1 for r in rows)


async def test_provider_reported_cost_wins_over_the_pricing_table(
    remote: tuple[RunningServer, FakeOpenAI], remote_database: MigratedDatabase
) -> None:
    running, fake = remote
    fake.report_cost = 0.0025
    async with ChatbotClient(running.address) as client:
        await client.search("anything at all")
    (row,) = [r for r in await cost_rows(remote_database) if r["method"].endswith("/Search")][-1:]
    assert row["cost_source"] == "provider"
    assert row["cost_micro_usd"] == 2500


async def test_endpoint_failure_fails_the_document_with_the_reason_and_logs_it(
    remote: tuple[RunningServer, FakeOpenAI], remote_database: MigratedDatabase
) -> None:
    running, fake = remote
    fake.failures.append(Failure(500))
    async with ChatbotClient(running.address) as client:
        uploaded = await client.upload_document(text_pdf(["Fails to embed."]), title="Unlucky")
        failed = await asyncio.wait_for(client.wait_for_document(uploaded.document.document_id), 60)
    assert failed.status == pb.DOCUMENT_STATUS_FAILED
    assert "embedding failed" in failed.error and "HTTP 500" in failed.error
    errors = [r for r in await cost_rows(remote_database) if r["error_type"]]
    assert [r["error_type"] for r in errors] == ["EMBEDDING_FAILED"]


async def test_search_answers_unavailable_when_the_endpoint_fails(
    remote: tuple[RunningServer, FakeOpenAI],
) -> None:
    running, fake = remote
    # The client retries a read refused UNAVAILABLE up to 4 attempts in all.
    fake.failures.extend([Failure(503)] * 4)
    async with ChatbotClient(running.address) as client:
        with pytest.raises(UnavailableError) as raised:
            await client.search("anything")
        assert raised.value.reason == "EMBEDDINGS_UNAVAILABLE"
        assert "HTTP 503" in raised.value.message
        fake.failures.extend([Failure(503)] * 2)
        assert (await client.search("anything")).embedding_model  # the third attempt
    assert not fake.failures
