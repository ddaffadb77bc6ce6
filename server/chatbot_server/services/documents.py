"""DocumentService: upload, processing status, listing, deletion and search."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import asyncpg
import grpc

from chatbot.v1 import chat_service_pb2, common_pb2, document_service_pb2, document_service_pb2_grpc
from chatbot_server.answers.grounding import documents_answer
from chatbot_server.config import DocumentSettings, RetrievalSettings
from chatbot_server.documents import document_store
from chatbot_server.documents.document_store import DocumentFilter, DocumentRecord, NewDocument
from chatbot_server.documents.upload_memory import HeldBytes, UploadBuffer, UploadMemory
from chatbot_server.platform import pagination
from chatbot_server.platform.errors import ServiceError, bad_request, embedding_unavailable
from chatbot_server.platform.validation import bounded_int, bounded_text, language_code, parse_uuid
from chatbot_server.retrieval.embeddings import Embedder, EmbeddingError
from chatbot_server.retrieval.hybrid_search import SearchFilter, retrieve
from chatbot_server.services.conversions import RETRIEVAL_MODES, retrieved_chunk, timestamp
from chatbot_server.services.upload_checks import check_content, new_document, too_large
from chatbot_server.services.uploads import ResumableUploads

pb = document_service_pb2
_STATUS_NAMES = ("PENDING", "PROCESSING", "READY", "FAILED")
_FINAL = ("READY", "FAILED")


class DocumentServicer(document_service_pb2_grpc.DocumentServiceServicer):
    """The `chatbot.v1.DocumentService` servicer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        settings: DocumentSettings,
        retrieval: RetrievalSettings,
        document_queued: Callable[[], None],
        shutting_down: asyncio.Event,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._settings = settings
        self._retrieval = retrieval
        self._upload_memory = UploadMemory(settings.max_upload_memory_bytes)
        self._document_queued = document_queued
        self._shutting_down = shutting_down
        self._uploads = ResumableUploads(pool, settings, self._upload_memory, self._store)

    async def UploadDocument(
        self, request_iterator: AsyncIterator[pb.UploadDocumentRequest], context: object
    ) -> pb.UploadDocumentResponse:
        metadata = await _first_metadata(request_iterator)
        if metadata.size_bytes < 0:
            raise bad_request("metadata.size_bytes", "must be the file's size in bytes, or 0")
        if metadata.size_bytes > self._settings.max_upload_bytes:
            raise too_large(
                "metadata.size_bytes", self._settings.max_upload_bytes, metadata.size_bytes
            )
        new = new_document(metadata)
        with self._upload_memory.hold() as held:
            # A declared size is held at once: an upload that cannot fit is refused before
            # its bytes travel.
            held.grow_to(metadata.size_bytes)
            content, sha256 = await self._receive_bytes(request_iterator, metadata, held)
            record, deduplicated = await self._store(new, content, sha256, metadata.overwrite)
        return pb.UploadDocumentResponse(document=document_proto(record), deduplicated=deduplicated)

    async def BeginUpload(
        self, request: pb.BeginUploadRequest, context: object
    ) -> pb.BeginUploadResponse:
        return await self._uploads.begin(request)

    async def AppendUpload(
        self, request: pb.AppendUploadRequest, context: object
    ) -> pb.AppendUploadResponse:
        return await self._uploads.append(request)

    async def GetUpload(
        self, request: pb.GetUploadRequest, context: object
    ) -> pb.GetUploadResponse:
        return await self._uploads.get(request)

    async def CommitUpload(
        self, request: pb.CommitUploadRequest, context: object
    ) -> pb.CommitUploadResponse:
        record, deduplicated = await self._uploads.commit(request)
        return pb.CommitUploadResponse(document=document_proto(record), deduplicated=deduplicated)

    async def _store(
        self, new: NewDocument, content: bytes | bytearray, sha256: str, overwrite: bool
    ) -> tuple[DocumentRecord, bool]:
        """Stores an uploaded file and queues it, unless the same bytes are stored already."""
        record, deduplicated = await document_store.insert_document(
            self._pool, new, content, sha256, overwrite
        )
        if not deduplicated or overwrite:
            self._document_queued()
        return record, deduplicated

    async def _receive_bytes(
        self,
        request_iterator: AsyncIterator[pb.UploadDocumentRequest],
        metadata: pb.UploadMetadata,
        held: HeldBytes,
    ) -> tuple[bytearray, str]:
        """The bytes, in one buffer, and their SHA-256, hashed piece by piece as they arrive."""
        limit = self._settings.max_upload_bytes
        buffer = UploadBuffer(metadata.size_bytes)
        digest = hashlib.sha256()
        async for message in request_iterator:
            if message.WhichOneof("payload") != "chunk":
                raise bad_request("metadata", "may only be sent in the first message")
            size = buffer.size + len(message.chunk)
            if size > limit:
                raise too_large("chunk", limit, size)
            held.grow_to(size)
            digest.update(message.chunk)
            buffer.append(message.chunk)
        content, sha256 = buffer.content(), digest.hexdigest()
        check_content(content, sha256, metadata.sha256)
        return content, sha256

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: object
    ) -> pb.GetDocumentResponse:
        record = await self._existing(request.document_id)
        return pb.GetDocumentResponse(document=document_proto(record))

    async def ListDocuments(
        self, request: pb.ListDocumentsRequest, context: object
    ) -> pb.ListDocumentsResponse:
        where = DocumentFilter(
            status=_status_name(request.status) if request.status else None,
            language=language_code("language", request.language) or None,
            document_type=request.document_type or None,
            tag=request.tag or None,
        )
        scope = f"documents:{where}"
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, scope)
        records, total = await document_store.list_documents(self._pool, where, limit + 1, after)
        page, next_token = pagination.split_page(records, limit, scope)
        return pb.ListDocumentsResponse(
            documents=[document_proto(r) for r in page],
            next_page_token=next_token,
            total_size=total,
        )

    async def DeleteDocument(
        self, request: pb.DeleteDocumentRequest, context: object
    ) -> pb.DeleteDocumentResponse:
        document_id = parse_uuid("document_id", request.document_id)
        if not await document_store.delete_document(self._pool, document_id):
            raise _not_found(document_id)
        return pb.DeleteDocumentResponse()

    async def ReprocessDocument(
        self, request: pb.ReprocessDocumentRequest, context: object
    ) -> pb.ReprocessDocumentResponse:
        document_id = parse_uuid("document_id", request.document_id)
        record = await document_store.requeue_document(self._pool, document_id)
        if record is None:
            await self._existing(request.document_id)
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the document is being processed; reprocess it once it is READY or FAILED",
                reason="DOCUMENT_PROCESSING",
                metadata={"document_id": str(document_id)},
            )
        self._document_queued()
        return pb.ReprocessDocumentResponse(document=document_proto(record))

    async def ReprocessAllDocuments(
        self, request: pb.ReprocessAllDocumentsRequest, context: object
    ) -> pb.ReprocessAllDocumentsResponse:
        status = _status_name(request.status) if request.status else None
        if status in ("PENDING", "PROCESSING"):
            raise bad_request("status", "must be READY, FAILED or unset; those are queued already")
        queued = await document_store.requeue_all(self._pool, status)
        if queued:
            self._document_queued()
        return pb.ReprocessAllDocumentsResponse(queued_count=queued)

    async def WatchDocument(
        self, request: pb.WatchDocumentRequest, context: object
    ) -> AsyncIterator[pb.WatchDocumentResponse]:
        document_id = parse_uuid("document_id", request.document_id)
        last_seen: tuple[object, ...] | None = None
        while True:
            record = await document_store.get_document(self._pool, document_id)
            if record is None:
                raise _not_found(document_id)
            state = (record.status, record.page_count, record.chunks_done, record.chunks_total)
            if state != last_seen:
                last_seen = state
                yield pb.WatchDocumentResponse(
                    document=document_proto(record),
                    pages_done=record.page_count,
                    chunks_done=record.chunks_done,
                    chunks_total=record.chunks_total,
                )
            if record.status in _FINAL:
                return
            try:
                await asyncio.wait_for(
                    self._shutting_down.wait(), self._settings.watch_poll_seconds
                )
            except TimeoutError:
                continue
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; watch again to continue",
                reason="SHUTTING_DOWN",
            )

    async def Search(self, request: pb.SearchRequest, context: object) -> pb.SearchResponse:
        started = time.perf_counter()
        query = bounded_text("query", request.query, 2000, required=True)
        top_k = bounded_int("top_k", request.top_k, self._retrieval.top_k, 50)
        threshold = request.similarity_threshold or self._retrieval.similarity_threshold
        if not 0 <= threshold <= 1:
            raise bad_request("similarity_threshold", "must be from 0 to 1")
        where = search_filter(request.filter)
        mode = RETRIEVAL_MODES.get(request.mode)
        if mode is None:
            raise bad_request("mode", f"unknown retrieval mode {request.mode}")
        language = language_code("language", request.language)
        try:
            found = await retrieve(
                self._pool, self._embedder, query, where, top_k, threshold, mode, language
            )
        except EmbeddingError as error:
            raise embedding_unavailable("the query", error) from error
        answered = documents_answer(found.evidence)
        return pb.SearchResponse(
            results=[retrieved_chunk(hit) for hit in found.hits],
            embedding_model=self._embedder.model_name,
            took_ms=round((time.perf_counter() - started) * 1000),
            query_language=found.language,
            grounding=chat_service_pb2.GROUNDING_ANSWERED
            if answered
            else chat_service_pb2.GROUNDING_NOT_FOUND,
        )

    async def _existing(self, raw_id: str) -> DocumentRecord:
        document_id = parse_uuid("document_id", raw_id)
        record = await document_store.get_document(self._pool, document_id)
        if record is None:
            raise _not_found(document_id)
        return record


async def _first_metadata(
    request_iterator: AsyncIterator[pb.UploadDocumentRequest],
) -> pb.UploadMetadata:
    async for message in request_iterator:
        if message.WhichOneof("payload") != "metadata":
            break
        return message.metadata
    raise bad_request("metadata", "the first message of an upload must carry the metadata")


def _not_found(document_id: UUID) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        f"no document {document_id}",
        reason="DOCUMENT_NOT_FOUND",
        metadata={"document_id": str(document_id)},
    )


def _status_name(status: int) -> str:
    if status not in range(1, len(_STATUS_NAMES) + 1):
        raise bad_request("status", f"unknown document status {status}")
    return _STATUS_NAMES[status - 1]


def document_proto(record: DocumentRecord) -> pb.Document:
    return pb.Document(
        document_id=str(record.id),
        title=record.title,
        filename=record.filename,
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        language=record.language,
        document_type=record.document_type,
        tags=record.tags,
        status=pb.DocumentStatus.Value(f"DOCUMENT_STATUS_{record.status}"),
        error=record.error,
        warnings=record.warnings,
        page_count=record.page_count,
        chunk_count=record.chunk_count,
        embedding_model=record.embedding_model,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        process_time=timestamp(record.processed_at),
    )


def search_filter(message: common_pb2.RetrievalFilter) -> SearchFilter:
    """The request's filter, validated."""
    ids = [
        parse_uuid(f"filter.document_ids[{index}]", raw)
        for index, raw in enumerate(message.document_ids)
    ]
    return SearchFilter(
        document_ids=ids or None,
        language=language_code("filter.language", message.language) or None,
        document_type=message.document_type or None,
        tags=list(message.tags) or None,
    )
