"""Resumable uploads through gRPC: begin, append at offsets, commit; retries, gaps, limits,
owners, expiry, and a second server taking the next piece."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2

from chatbot.v1 import document_service_pb2 as pb
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from chatbot_client import ChatbotClient
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents, wait_until_final
from tests.rpc_errors import detail, error_info
from tests.servers import RunningServer, server_settings, start_server

PIECE = 1024 * 1024


@pytest_asyncio.fixture
async def stub(
    server: RunningServer, database: MigratedDatabase
) -> AsyncIterator[DocumentServiceStub]:
    await truncate_documents(database.owner_url)
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield DocumentServiceStub(channel)


def metadata_of(content: bytes, **fields: object) -> pb.UploadMetadata:
    return pb.UploadMetadata(
        filename="manual.pdf",
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        **fields,  # type: ignore[arg-type]
    )


async def begin(stub: DocumentServiceStub, content: bytes, **fields: object) -> str:
    response = await stub.BeginUpload(
        pb.BeginUploadRequest(metadata=metadata_of(content, **fields))
    )
    assert response.upload.received_bytes == 0
    return str(response.upload.upload_id)


async def append(stub: DocumentServiceStub, upload_id: str, offset: int, data: bytes) -> pb.Upload:
    response = await stub.AppendUpload(
        pb.AppendUploadRequest(upload_id=upload_id, offset=offset, data=data)
    )
    return response.upload


def reason_of(error: grpc.aio.AioRpcError) -> str:
    return error_info(error).reason


def padded_pdf(size: int) -> bytes:
    """A real PDF followed by a comment padding it to `size` bytes (readers ignore it)."""
    content = manual_pdf()
    return content + b"\n%" + b"x" * (size - len(content) - 2)


async def test_a_file_in_pieces_becomes_a_ready_document(
    stub: DocumentServiceStub, server: RunningServer
) -> None:
    content = padded_pdf(2 * PIECE + 123)
    upload_id = await begin(stub, content, title="In pieces", tags=["web"])
    for offset in range(0, len(content), PIECE):
        upload = await append(stub, upload_id, offset, content[offset : offset + PIECE])
        assert upload.received_bytes == min(offset + PIECE, len(content))
    committed = await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    assert not committed.deduplicated
    assert committed.document.title == "In pieces"
    assert committed.document.sha256 == hashlib.sha256(content).hexdigest()
    assert committed.document.size_bytes == len(content)
    async with ChatbotClient(server.address, timeout=30) as client:
        ready = await wait_until_final(client, committed.document.document_id)
    assert ready.status == pb.DOCUMENT_STATUS_READY, ready.error

    again = await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    assert again.document.document_id == committed.document.document_id


async def test_a_piece_sent_again_changes_nothing_and_a_gap_is_refused(
    stub: DocumentServiceStub,
) -> None:
    content = padded_pdf(3000)
    upload_id = await begin(stub, content)
    assert (await append(stub, upload_id, 0, content[:1000])).received_bytes == 1000
    assert (await append(stub, upload_id, 0, content[:1000])).received_bytes == 1000
    # A retry that overlaps what arrived adds only its new tail.
    assert (await append(stub, upload_id, 500, content[500:2000])).received_bytes == 2000

    with pytest.raises(grpc.aio.AioRpcError) as gap:
        await append(stub, upload_id, 2500, content[2500:])
    assert gap.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(gap.value) == "UPLOAD_OFFSET_MISMATCH"
    assert error_info(gap.value).metadata["expected_offset"] == "2000"

    with pytest.raises(grpc.aio.AioRpcError) as early:
        await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(early.value) == "UPLOAD_INCOMPLETE"

    got = await stub.GetUpload(pb.GetUploadRequest(upload_id=upload_id))
    assert got.upload.received_bytes == 2000
    await append(stub, upload_id, got.upload.received_bytes, content[2000:])
    committed = await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    assert committed.document.sha256 == hashlib.sha256(content).hexdigest()


async def test_the_same_bytes_again_return_the_stored_document(stub: DocumentServiceStub) -> None:
    content = manual_pdf()
    first = None
    for _ in range(2):
        upload_id = await begin(stub, content)
        await append(stub, upload_id, 0, content)
        committed = await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
        first = first or committed.document.document_id
        assert committed.document.document_id == first
    assert committed.deduplicated


@pytest.mark.parametrize(
    ("metadata", "reason", "field"),
    [
        (pb.UploadMetadata(filename="a.pdf", sha256="0" * 64), "INVALID_ARGUMENT",
         "metadata.size_bytes"),
        (pb.UploadMetadata(filename="a.pdf", size_bytes=10), "INVALID_ARGUMENT",
         "metadata.sha256"),
        (pb.UploadMetadata(filename="a.pdf", size_bytes=10**12, sha256="0" * 64),
         "DOCUMENT_TOO_LARGE", "metadata.size_bytes"),
        (pb.UploadMetadata(size_bytes=10, sha256="0" * 64), "INVALID_ARGUMENT", "metadata.title"),
        (pb.UploadMetadata(filename="a.pdf", size_bytes=10, sha256="0" * 64, language="klingon!"),
         "INVALID_ARGUMENT", "metadata.language"),
    ],
    ids=["no size", "no sha256", "too large", "no title", "bad language"],
)  # fmt: skip
async def test_bad_metadata_is_refused_at_the_start(
    stub: DocumentServiceStub, metadata: pb.UploadMetadata, reason: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.BeginUpload(pb.BeginUploadRequest(metadata=metadata))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == reason
    violations = detail(refused.value, error_details_pb2.BadRequest).field_violations
    assert [violation.field for violation in violations] == [field]


async def test_bad_pieces_are_refused(stub: DocumentServiceStub) -> None:
    content = padded_pdf(PIECE + 10)
    upload_id = await begin(stub, content)
    for offset, data, reason in [
        (0, content[: PIECE + 1], "INVALID_ARGUMENT"),
        (0, b"", "INVALID_ARGUMENT"),
        (-1, b"x", "INVALID_ARGUMENT"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await append(stub, upload_id, offset, data)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(refused.value) == reason
    await append(stub, upload_id, 0, content[:PIECE])
    with pytest.raises(grpc.aio.AioRpcError) as past_end:
        await append(stub, upload_id, PIECE, content[PIECE:] + b"extra")
    assert reason_of(past_end.value) == "UPLOAD_SIZE_EXCEEDED"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await append(stub, "7d3c1e9a-0000-4000-8000-000000000000", 0, b"x")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(unknown.value) == "UPLOAD_NOT_FOUND"


@pytest.mark.parametrize(
    ("content", "announced_sha256", "code", "reason"),
    [
        (b"plain text, not a PDF", None, grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_DOCUMENT"),
        (manual_pdf(), "0" * 64, grpc.StatusCode.DATA_LOSS, "CHECKSUM_MISMATCH"),
    ],
    ids=["not a pdf", "checksum"],
)
async def test_bytes_that_fail_the_checks_are_refused_at_commit_and_the_upload_goes(
    stub: DocumentServiceStub,
    content: bytes,
    announced_sha256: str | None,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    metadata = metadata_of(content)
    if announced_sha256:
        metadata.sha256 = announced_sha256
    begun = await stub.BeginUpload(pb.BeginUploadRequest(metadata=metadata))
    upload_id = begun.upload.upload_id
    await append(stub, upload_id, 0, content)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    assert refused.value.code() == code
    assert reason_of(refused.value) == reason
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetUpload(pb.GetUploadRequest(upload_id=upload_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListDocuments(pb.ListDocumentsRequest())
    assert list(listed.documents) == []


async def test_an_upload_belongs_to_whoever_began_it(
    stub: DocumentServiceStub, server: RunningServer
) -> None:
    content = manual_pdf()
    upload_id = await begin(stub, content)
    async with grpc.aio.insecure_channel(server.address) as channel:
        other = DocumentServiceStub(channel)
        forwarded = (("x-forwarded-for", "198.51.100.7"),)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await other.AppendUpload(
                pb.AppendUploadRequest(upload_id=upload_id, offset=0, data=content),
                metadata=forwarded,
            )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await append(stub, upload_id, 0, content)).received_bytes == len(content)


async def test_an_abandoned_upload_expires_with_its_pieces(
    stub: DocumentServiceStub, database: MigratedDatabase
) -> None:
    content = padded_pdf(5000)
    upload_id = await begin(stub, content)
    await append(stub, upload_id, 0, content[:1000])
    conn = await asyncpg.connect(database.owner_url)
    try:
        # An hour passes.
        await conn.execute(
            "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1", upload_id
        )
        with pytest.raises(grpc.aio.AioRpcError) as expired:
            await append(stub, upload_id, 1000, content[1000:])
        assert reason_of(expired.value) == "UPLOAD_NOT_FOUND"
        await begin(stub, content)
        assert await conn.fetchval("SELECT count(*) FROM uploads WHERE id = $1", upload_id) == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM upload_pieces WHERE upload_id = $1", upload_id
            )
            == 0
        )
    finally:
        await conn.close()


async def test_another_server_takes_the_next_piece(
    stub: DocumentServiceStub, database: MigratedDatabase, redis_url: str
) -> None:
    content = padded_pdf(PIECE + 500)
    upload_id = await begin(stub, content)
    await append(stub, upload_id, 0, content[:PIECE])
    other = await start_server(server_settings(database.app_url, redis_url))
    try:
        async with grpc.aio.insecure_channel(other.address) as channel:
            replica = DocumentServiceStub(channel)
            await append(replica, upload_id, PIECE, content[PIECE:])
            committed = await replica.CommitUpload(pb.CommitUploadRequest(upload_id=upload_id))
    finally:
        await other.stop()
    assert committed.document.sha256 == hashlib.sha256(content).hexdigest()
