"""The ingestion queue lives in PostgreSQL: nothing is lost across restarts or dead workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio

from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_client.errors import FailedPreconditionError, InvalidArgumentError
from chatbot_server.app import ingestion_worker
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import manual_pdf, truncate_documents
from tests.servers import RunningServer, server_settings, start_server

UPLOAD_LIMIT = 20_000


@pytest_asyncio.fixture(scope="module")
async def queue_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_queue")


@pytest_asyncio.fixture
async def idle_server(
    queue_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    """A server that queues documents but processes none, with a small upload limit."""
    await truncate_documents(queue_database.owner_url)
    settings = server_settings(
        queue_database.app_url,
        redis_url,
        INGESTION_WORKERS="0",
        MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
    )
    running = await start_server(settings)
    yield running
    await running.stop()


async def _status(client: ChatbotClient, document_id: str) -> pb.Document:
    return await client.get_document(document_id)


async def _execute(database: MigratedDatabase, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(database.owner_url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_queued_document_survives_a_restart_and_is_processed_after_it(
    idle_server: RunningServer, queue_database: MigratedDatabase, redis_url: str
) -> None:
    async with ChatbotClient(idle_server.address) as client:
        uploaded = await client.upload_document(manual_pdf(), title="Queued")
        await asyncio.sleep(0.5)
        assert (await _status(client, uploaded.document.document_id)).status == (
            pb.DOCUMENT_STATUS_PENDING
        )
    await idle_server.stop()

    restarted = await start_server(server_settings(queue_database.app_url, redis_url))
    try:
        async with ChatbotClient(restarted.address) as client:
            ready = await asyncio.wait_for(
                client.wait_for_document(uploaded.document.document_id), 120
            )
        assert ready.status == pb.DOCUMENT_STATUS_READY
        assert ready.chunk_count > 0
    finally:
        await restarted.stop()


async def test_a_dead_workers_document_is_taken_over_when_its_lease_runs_out(
    idle_server: RunningServer, queue_database: MigratedDatabase
) -> None:
    async with ChatbotClient(idle_server.address) as client:
        uploaded = await client.upload_document(manual_pdf(), title="Orphaned")
        document_id = uploaded.document.document_id
        await _execute(
            queue_database,
            "UPDATE documents SET status = 'PROCESSING', attempts = 1, "
            "lease_expires_at = now() + interval '1 hour' WHERE id = $1",
            document_id,
        )
        worker = ingestion_worker(idle_server.server.settings, idle_server.resources)
        assert not await worker.process_next()  # leased to someone else, still alive

        await _execute(
            queue_database,
            "UPDATE documents SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
            document_id,
        )
        assert await worker.process_next()
        worker.close()
        ready = await _status(client, document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY


async def test_a_document_that_keeps_killing_workers_fails_with_a_reason(
    idle_server: RunningServer, queue_database: MigratedDatabase
) -> None:
    async with ChatbotClient(idle_server.address) as client:
        uploaded = await client.upload_document(manual_pdf(), title="Cursed")
        document_id = uploaded.document.document_id
        await _execute(
            queue_database,
            "UPDATE documents SET status = 'PROCESSING', attempts = 3, "
            "lease_expires_at = now() - interval '1 second' WHERE id = $1",
            document_id,
        )
        worker = ingestion_worker(idle_server.server.settings, idle_server.resources)
        assert await worker.process_next()
        worker.close()
        failed = await _status(client, document_id)
    assert failed.status == pb.DOCUMENT_STATUS_FAILED
    assert "interrupted 3 times" in failed.error


async def test_reprocess_is_refused_while_processing(
    idle_server: RunningServer, queue_database: MigratedDatabase
) -> None:
    async with ChatbotClient(idle_server.address) as client:
        uploaded = await client.upload_document(manual_pdf(), title="Busy")
        await _execute(
            queue_database,
            "UPDATE documents SET status = 'PROCESSING' WHERE id = $1",
            uploaded.document.document_id,
        )
        with pytest.raises(FailedPreconditionError):
            await client.reprocess_document(uploaded.document.document_id)


async def test_bytes_beyond_the_limit_are_refused_and_nothing_is_stored(
    idle_server: RunningServer,
) -> None:
    async with ChatbotClient(idle_server.address) as client:
        oversized = manual_pdf() + b" " * UPLOAD_LIMIT
        with pytest.raises(InvalidArgumentError) as refused:
            await client.upload_document(oversized, title="Huge")
        assert f"limit of {UPLOAD_LIMIT} bytes" in refused.value.message

        async def undeclared() -> AsyncIterator[pb.UploadDocumentRequest]:
            yield pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Sneaky"))
            for start in range(0, len(oversized), 4096):
                yield pb.UploadDocumentRequest(chunk=oversized[start : start + 4096])

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.documents.UploadDocument(undeclared(), timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"limit of {UPLOAD_LIMIT} bytes" in (raised.value.details() or "")
        assert [d async for d in client.list_documents()] == []
