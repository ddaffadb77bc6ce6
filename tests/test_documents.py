"""DocumentService end to end: upload, processing, watching, listing, deleting, reprocessing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2

from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_client.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import manual_pdf, truncate_documents, wait_until_final
from tests.pdfs import (
    ZERO_PAGE_PDF,
    encrypted_pdf,
    image_only_pdf,
    lying_page_tree_pdf,
    text_pdf,
)
from tests.rpc_errors import rich_status
from tests.servers import RunningServer, server_settings, start_server


@pytest_asyncio.fixture
async def client(server: RunningServer, database: MigratedDatabase) -> AsyncIterator[ChatbotClient]:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address, timeout=30) as opened:
        yield opened


async def stored_chunks(database: MigratedDatabase, document_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database.owner_url)
    try:
        return await conn.fetch(
            "SELECT ordinal, page_number, section_title, content, token_count, embedding_model "
            "FROM chunks WHERE document_id = $1 ORDER BY ordinal",
            document_id,
        )
    finally:
        await conn.close()


async def test_upload_returns_pending_and_the_worker_makes_it_ready(
    client: ChatbotClient, database: MigratedDatabase
) -> None:
    uploaded = await client.upload_document(
        manual_pdf(), title="XPD-42 Manual", filename="xpd42.pdf", tags=["manual", "xpd"]
    )
    assert not uploaded.deduplicated
    assert uploaded.document.status == pb.DOCUMENT_STATUS_PENDING
    assert uploaded.document.title == "XPD-42 Manual"
    assert list(uploaded.document.tags) == ["manual", "xpd"]

    ready = await wait_until_final(client, uploaded.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY, ready.error
    assert ready.page_count == 3
    assert ready.chunk_count >= 3
    assert ready.embedding_model == "use-multilingual-v3"
    assert ready.HasField("process_time")

    chunks = await stored_chunks(database, uploaded.document.document_id)
    assert len(chunks) == ready.chunk_count
    assert [c["ordinal"] for c in chunks] == list(range(len(chunks)))
    located = {c["page_number"]: c["section_title"] for c in chunks}
    assert located == {1: "Installation", 2: "Network setup", 3: "Troubleshooting"}
    assert any("DMX input cable to port 1" in c["content"] for c in chunks if c["page_number"] == 1)
    assert all(0 < c["token_count"] <= 254 for c in chunks)


async def test_watch_reports_progress_until_ready(client: ChatbotClient) -> None:
    uploaded = await client.upload_document(manual_pdf(), title="Watched")
    updates = [u async for u in client.watch_document(uploaded.document.document_id)]
    statuses = [u.document.status for u in updates]
    order = [pb.DOCUMENT_STATUS_PENDING, pb.DOCUMENT_STATUS_PROCESSING, pb.DOCUMENT_STATUS_READY]
    assert statuses == sorted(statuses, key=order.index)
    last = updates[-1]
    assert last.document.status == pb.DOCUMENT_STATUS_READY
    assert last.pages_done == 3
    assert last.chunks_done == last.chunks_total == last.document.chunk_count > 0


async def test_same_bytes_return_the_stored_document_unless_overwrite(
    client: ChatbotClient,
) -> None:
    data = text_pdf(["Deduplication is by SHA-256 of the bytes."])
    first = await client.upload_document(data, title="Original")
    await wait_until_final(client, first.document.document_id)

    again = await client.upload_document(data, title="Copy")
    assert again.deduplicated
    assert again.document.document_id == first.document.document_id
    assert again.document.title == "Original"

    replaced = await client.upload_document(data, title="Replaced", overwrite=True)
    assert replaced.deduplicated
    assert replaced.document.document_id == first.document.document_id
    assert replaced.document.title == "Replaced"
    assert replaced.document.status == pb.DOCUMENT_STATUS_PENDING
    ready = await wait_until_final(client, first.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY
    assert [d.document_id async for d in client.list_documents()] == [ready.document_id]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n\x00\x01 damaged beyond repair", "not a readable PDF"),
        (encrypted_pdf(), "password-protected"),
        (ZERO_PAGE_PDF, "no pages"),
        (image_only_pdf(), "no extractable text"),
        (lying_page_tree_pdf(), "the PDF is damaged"),
    ],
    ids=["corrupt", "encrypted", "zero pages", "scanned", "lying page tree"],
)
async def test_unreadable_pdf_fails_with_a_stored_reason_and_the_next_one_processes(
    client: ChatbotClient, data: bytes, reason: str
) -> None:
    bad = await client.upload_document(data, title="Bad")
    failed = await wait_until_final(client, bad.document.document_id)
    assert failed.status == pb.DOCUMENT_STATUS_FAILED
    assert reason in failed.error
    assert failed.chunk_count == 0

    good = await client.upload_document(text_pdf(["Still working after a bad file."]), title="Good")
    ready = await wait_until_final(client, good.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY


async def test_pages_without_text_become_a_warning(client: ChatbotClient) -> None:
    uploaded = await client.upload_document(
        text_pdf(["Words here.", "", "More words."]), title="Gappy"
    )
    ready = await wait_until_final(client, uploaded.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY
    assert list(ready.warnings) == ["1 of 3 pages have no extractable text: 2"]


async def _upload_error(
    client: ChatbotClient, messages: list[pb.UploadDocumentRequest]
) -> grpc.aio.AioRpcError:
    async def stream() -> AsyncIterator[pb.UploadDocumentRequest]:
        for message in messages:
            yield message

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.documents.UploadDocument(stream(), timeout=30)
    return raised.value


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    assert rich_status(error).details[0].Unpack(info)
    return info


def _violations(error: grpc.aio.AioRpcError) -> list[str]:
    for detail in rich_status(error).details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            return [violation.field for violation in bad_request.field_violations]
    return []


@pytest.mark.parametrize(
    ("messages", "reason", "field"),
    [
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Empty"))],
         "UNSUPPORTED_DOCUMENT", "chunk"),
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Text")),
          pb.UploadDocumentRequest(chunk=b"plain text, not a PDF")],
         "UNSUPPORTED_DOCUMENT", "chunk"),
        ([pb.UploadDocumentRequest(chunk=b"%PDF-1.4")], "INVALID_ARGUMENT", "metadata"),
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Big", size_bytes=10**12))],
         "DOCUMENT_TOO_LARGE", "metadata.size_bytes"),
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Odd", size_bytes=-1)),
          pb.UploadDocumentRequest(chunk=b"%PDF-1.4")],
         "INVALID_ARGUMENT", "metadata.size_bytes"),
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="x", language="english!"))],
         "INVALID_ARGUMENT", "metadata.language"),
        ([pb.UploadDocumentRequest(metadata=pb.UploadMetadata())],
         "INVALID_ARGUMENT", "metadata.title"),
    ],
    ids=["zero bytes", "not a pdf", "no metadata", "too large", "negative size", "bad language",
         "no title"],
)  # fmt: skip
async def test_bad_uploads_are_refused_and_store_nothing(
    client: ChatbotClient,
    database: MigratedDatabase,
    messages: list[pb.UploadDocumentRequest],
    reason: str,
    field: str,
) -> None:
    error = await _upload_error(client, messages)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(error).reason == reason
    assert _violations(error) == [field]
    assert [d async for d in client.list_documents()] == []


async def test_checksum_mismatch_is_data_loss(client: ChatbotClient) -> None:
    data = text_pdf(["Checksummed."])
    error = await _upload_error(
        client,
        [
            pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="x", sha256="0" * 64)),
            pb.UploadDocumentRequest(chunk=data),
        ],
    )
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert [d async for d in client.list_documents()] == []


async def test_upload_cancelled_half_way_stores_nothing(client: ChatbotClient) -> None:
    import asyncio

    half_sent = asyncio.Event()

    async def stream() -> AsyncIterator[pb.UploadDocumentRequest]:
        yield pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="Cancelled"))
        yield pb.UploadDocumentRequest(chunk=manual_pdf()[:1000])
        half_sent.set()
        await asyncio.sleep(3600)

    call = client.documents.UploadDocument(stream())
    await half_sent.wait()
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.3)
    assert [d async for d in client.list_documents()] == []


async def test_get_and_delete_answer_not_found_and_invalid_argument(client: ChatbotClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (client.get_document, client.delete_document, client.reprocess_document):
        with pytest.raises(NotFoundError) as not_found:
            await call(missing)
        assert not_found.value.code == grpc.StatusCode.NOT_FOUND
        assert not_found.value.reason == "DOCUMENT_NOT_FOUND"
        with pytest.raises(InvalidArgumentError) as invalid:
            await call("not-a-uuid")
        assert invalid.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in invalid.value.field_violations] == ["document_id"]


async def test_delete_removes_the_document_and_its_chunks(
    client: ChatbotClient, database: MigratedDatabase
) -> None:
    uploaded = await client.upload_document(manual_pdf(), title="Doomed")
    await wait_until_final(client, uploaded.document.document_id)
    assert await stored_chunks(database, uploaded.document.document_id)
    await client.delete_document(uploaded.document.document_id)
    assert await stored_chunks(database, uploaded.document.document_id) == []
    with pytest.raises(NotFoundError):
        await client.get_document(uploaded.document.document_id)


async def test_list_filters_and_pages(client: ChatbotClient) -> None:
    ids = []
    for number in range(5):
        uploaded = await client.upload_document(
            text_pdf([f"Document number {number}."]),
            title=f"Doc {number}",
            language="de" if number % 2 else "en",
            tags=["odd"] if number % 2 else ["even"],
            document_type="memo",
        )
        ids.append(uploaded.document.document_id)

    first = await client.documents.ListDocuments(pb.ListDocumentsRequest(page_size=2))
    assert first.total_size == 5
    assert [d.document_id for d in first.documents] == ids[::-1][:2]
    collected = [d.document_id async for d in client.list_documents(page_size=2)]
    assert collected == ids[::-1]

    odd = [d.title async for d in client.list_documents(tag="odd")]
    assert odd == ["Doc 3", "Doc 1"]
    german = [d.title async for d in client.list_documents(language="de")]
    assert german == ["Doc 3", "Doc 1"]

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.documents.ListDocuments(
            pb.ListDocumentsRequest(page_size=2, page_token=first.next_page_token, tag="odd")
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(raised.value) == ["page_token"]


async def test_reprocess_queues_a_ready_document_again(client: ChatbotClient) -> None:
    uploaded = await client.upload_document(manual_pdf(), title="Again")
    await wait_until_final(client, uploaded.document.document_id)
    queued = await client.reprocess_document(uploaded.document.document_id)
    assert queued.status in (pb.DOCUMENT_STATUS_PENDING, pb.DOCUMENT_STATUS_PROCESSING)
    ready = await wait_until_final(client, uploaded.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY
    assert await client.reprocess_all_documents(pb.DOCUMENT_STATUS_READY) == 1
    assert (await wait_until_final(client, ready.document_id)).status == pb.DOCUMENT_STATUS_READY


async def test_a_document_over_the_page_limit_fails_at_once_and_the_next_one_processes(
    postgres_superuser_url: str, redis_url: str
) -> None:
    database = await create_test_database(postgres_superuser_url, "chatbot_page_limit")
    running = await start_server(
        server_settings(database.app_url, redis_url, MAX_DOCUMENT_PAGES="2")
    )
    try:
        async with ChatbotClient(running.address, timeout=30) as limited:
            long = await limited.upload_document(text_pdf(["One.", "Two.", "Three."]), title="3p")
            short = await limited.upload_document(text_pdf(["Only.", "Two."]), title="2p")
            failed = await wait_until_final(limited, long.document.document_id)
            assert failed.status == pb.DOCUMENT_STATUS_FAILED
            assert "has 3 pages" in failed.error and "MAX_DOCUMENT_PAGES" in failed.error
            ready = await wait_until_final(limited, short.document.document_id)
            assert ready.status == pb.DOCUMENT_STATUS_READY
    finally:
        await running.stop()


async def test_uploads_together_may_not_hold_more_than_the_upload_memory(
    database: MigratedDatabase, redis_url: str
) -> None:
    running = await start_server(
        server_settings(
            database.app_url,
            redis_url,
            INGESTION_WORKERS="0",
            MAX_UPLOAD_BYTES="300000",
            # Room for one upload, not two: however far the server has read the first
            # (the client only knows what it sent), the second does not fit beside it.
            MAX_UPLOAD_MEMORY_BYTES="300000",
        )
    )
    padded = [manual_pdf() + b"\n%" + bytes([65 + n]) * 250_000 for n in range(2)]
    first_holding = asyncio.Event()

    async def slow_upload() -> AsyncIterator[pb.UploadDocumentRequest]:
        yield pb.UploadDocumentRequest(metadata=pb.UploadMetadata(title="slow"))
        for start in range(0, len(padded[0]), 50_000):
            yield pb.UploadDocumentRequest(chunk=padded[0][start : start + 50_000])
            if start >= 200_000:
                first_holding.set()
                await asyncio.sleep(0.5)

    try:
        async with ChatbotClient(running.address, timeout=30) as uploader:
            slow = asyncio.ensure_future(uploader.documents.UploadDocument(slow_upload()))
            await first_holding.wait()
            with pytest.raises(ResourceExhaustedError) as raised:
                await uploader.upload_document(padded[1], title="refused for now")
            assert raised.value.reason == "UPLOADS_BUSY"
            assert raised.value.retry_delay is not None and raised.value.retry_delay > 0
            assert (await slow).document.title == "slow"
            accepted = await uploader.upload_document(padded[1], title="now accepted")
            assert accepted.document.status == pb.DOCUMENT_STATUS_PENDING
    finally:
        await running.stop()
