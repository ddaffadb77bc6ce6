"""Resumable uploads: begin, append pieces at offsets, commit; for callers that cannot stream
a request, such as browsers. The pieces wait in PostgreSQL, so any replica takes the next."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import grpc

from chatbot.v1 import document_service_pb2 as pb
from chatbot_server.config import DocumentSettings
from chatbot_server.documents import document_store, upload_store
from chatbot_server.documents.document_store import DocumentRecord, NewDocument
from chatbot_server.documents.upload_memory import UploadMemory
from chatbot_server.documents.upload_store import AppendResult, UploadRecord
from chatbot_server.platform.call_context import call_in_progress
from chatbot_server.platform.errors import ServiceError, bad_request
from chatbot_server.platform.validation import parse_uuid
from chatbot_server.services.conversions import timestamp
from chatbot_server.services.upload_checks import (
    check_content,
    is_hex_sha256,
    new_document,
    too_large,
)

MAX_PIECE_BYTES = 1024 * 1024
# Open uploads one caller may have at once: enough for a folder of files, and a bound on
# what an abandoned flood can park in the database until it expires.
MAX_OPEN_UPLOADS = 20

StoreDocument = Callable[
    [NewDocument, bytes | bytearray, str, bool], Awaitable[tuple[DocumentRecord, bool]]
]


class ResumableUploads:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DocumentSettings,
        memory: UploadMemory,
        store_document: StoreDocument,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._memory = memory
        self._store_document = store_document

    async def begin(self, request: pb.BeginUploadRequest) -> pb.BeginUploadResponse:
        metadata = request.metadata
        if metadata.size_bytes <= 0:
            raise bad_request("metadata.size_bytes", "give the file's size in bytes")
        if metadata.size_bytes > self._settings.max_upload_bytes:
            raise too_large(
                "metadata.size_bytes", self._settings.max_upload_bytes, metadata.size_bytes
            )
        if not is_hex_sha256(metadata.sha256):
            raise bad_request(
                "metadata.sha256", "give the file's SHA-256 as 64 hexadecimal characters"
            )
        new_document(metadata)
        owner = call_in_progress().identity
        await upload_store.delete_expired(self._pool)
        if await upload_store.open_uploads(self._pool, owner) >= MAX_OPEN_UPLOADS:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{owner} already has {MAX_OPEN_UPLOADS} uploads open; commit them or let "
                "them expire first",
                reason="TOO_MANY_UPLOADS",
                metadata={"limit": str(MAX_OPEN_UPLOADS)},
            )
        upload = await upload_store.begin_upload(
            self._pool,
            owner,
            metadata.SerializeToString(),
            metadata.size_bytes,
            metadata.sha256.lower(),
            self._settings.upload_expiry_seconds,
        )
        return pb.BeginUploadResponse(upload=upload_proto(upload))

    async def append(self, request: pb.AppendUploadRequest) -> pb.AppendUploadResponse:
        upload_id = parse_uuid("upload_id", request.upload_id)
        if request.offset < 0:
            raise bad_request("offset", f"must not be negative, got {request.offset}")
        if not 0 < len(request.data) <= MAX_PIECE_BYTES:
            raise bad_request(
                "data", f"a piece holds 1 to {MAX_PIECE_BYTES:,} bytes, got {len(request.data):,}"
            )
        with self._memory.hold() as held:
            held.grow_to(len(request.data))
            appended = await upload_store.append_piece(
                self._pool,
                upload_id,
                call_in_progress().identity,
                request.offset,
                request.data,
                self._settings.upload_expiry_seconds,
            )
        if appended is None:
            raise _no_upload(upload_id)
        result, upload = appended
        if result is AppendResult.GAP:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the upload has {upload.received_bytes:,} bytes; send the piece at offset "
                f"{upload.received_bytes}, not {request.offset}",
                reason="UPLOAD_OFFSET_MISMATCH",
                metadata={"expected_offset": str(upload.received_bytes)},
            )
        if result is AppendResult.PAST_END:
            raise bad_request(
                "data",
                f"the piece goes past the {upload.size_bytes:,} bytes announced in "
                "metadata.size_bytes",
                reason="UPLOAD_SIZE_EXCEEDED",
            )
        return pb.AppendUploadResponse(upload=upload_proto(upload))

    async def get(self, request: pb.GetUploadRequest) -> pb.GetUploadResponse:
        return pb.GetUploadResponse(upload=upload_proto(await self._own(request.upload_id)))

    async def commit(self, request: pb.CommitUploadRequest) -> tuple[DocumentRecord, bool]:
        upload = await self._own(request.upload_id)
        if upload.committed:
            return await self._committed_document(upload), upload.deduplicated
        if upload.received_bytes < upload.size_bytes:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{upload.received_bytes:,} of {upload.size_bytes:,} bytes have arrived; send "
                f"the rest from offset {upload.received_bytes} before committing",
                reason="UPLOAD_INCOMPLETE",
                metadata={
                    "received_bytes": str(upload.received_bytes),
                    "size_bytes": str(upload.size_bytes),
                },
            )
        metadata = pb.UploadMetadata.FromString(upload.metadata)
        with self._memory.hold() as held:
            held.grow_to(upload.size_bytes)
            content, sha256 = await upload_store.upload_content(
                self._pool, upload.id, upload.size_bytes
            )
            try:
                check_content(content, sha256, upload.sha256)
            except ServiceError:
                # Sending the same pieces again cannot help; the caller starts over.
                await upload_store.delete_upload(self._pool, upload.id)
                raise
            record, deduplicated = await self._store_document(
                new_document(metadata), content, sha256, metadata.overwrite
            )
        await upload_store.mark_committed(self._pool, upload.id, record.id, deduplicated)
        return record, deduplicated

    async def _own(self, raw_id: str) -> UploadRecord:
        upload_id = parse_uuid("upload_id", raw_id)
        upload = await upload_store.get_upload(self._pool, upload_id, call_in_progress().identity)
        if upload is None:
            raise _no_upload(upload_id)
        return upload

    async def _committed_document(self, upload: UploadRecord) -> DocumentRecord:
        record = None
        if upload.document_id is not None:
            record = await document_store.get_document(self._pool, upload.document_id)
        if record is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                "the upload was committed, but its document has been deleted since",
                reason="DOCUMENT_NOT_FOUND",
            )
        return record


def upload_proto(upload: UploadRecord) -> pb.Upload:
    return pb.Upload(
        upload_id=str(upload.id),
        metadata=pb.UploadMetadata.FromString(upload.metadata),
        received_bytes=upload.received_bytes,
        expire_time=timestamp(upload.expires_at),
    )


def _no_upload(upload_id: UUID) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        f"no upload {upload_id} of yours is open: it expired, or was never begun by this "
        "caller; begin the upload again",
        reason="UPLOAD_NOT_FOUND",
        metadata={"upload_id": str(upload_id)},
    )
