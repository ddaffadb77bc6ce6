"""An asyncio client holding one channel and typed stubs for every chatbot.v1 service."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import (
    admin_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    common_pb2,
    document_service_pb2,
    document_service_pb2_grpc,
)
from chatbot_client.auth import api_key_interceptors

pb = document_service_pb2
chat_pb = chat_service_pb2
UPLOAD_PIECE_BYTES = 256 * 1024
_FINAL = (pb.DOCUMENT_STATUS_READY, pb.DOCUMENT_STATUS_FAILED)


class ChatbotClient:
    """Use as `async with ChatbotClient("127.0.0.1:50051") as client: ...`.

    The stubs (`chat`, `documents`, `admin`) reach every RPC; the methods below are the
    common calls with Python types, pagination and streaming taken care of.
    """

    def __init__(self, target: str, *, timeout: float = 30.0, api_key: str | None = None) -> None:
        self.target = target
        self.timeout = timeout
        interceptors = api_key_interceptors(api_key) if api_key else None
        self._channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        self.chat = chat_service_pb2_grpc.ChatServiceStub(self._channel)
        self.documents = document_service_pb2_grpc.DocumentServiceStub(self._channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def health(self, service: str = "") -> str:
        """The serving status of the server ("") or of one service, e.g. "SERVING"."""
        response = await self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def upload_document(
        self,
        source: bytes | Path,
        *,
        title: str = "",
        filename: str = "",
        language: str = "",
        document_type: str = "",
        tags: Iterable[str] = (),
        overwrite: bool = False,
    ) -> pb.UploadDocumentResponse:
        """Streams a PDF (bytes, or a file read piece by piece) with its metadata."""
        if isinstance(source, Path):
            filename = filename or source.name
            size, digest = _file_size_and_sha256(source)
        else:
            size, digest = len(source), hashlib.sha256(source).hexdigest()
        metadata = pb.UploadMetadata(
            title=title,
            filename=filename,
            language=language,
            document_type=document_type,
            tags=list(tags),
            overwrite=overwrite,
            size_bytes=size,
            sha256=digest,
        )
        response: pb.UploadDocumentResponse = await self.documents.UploadDocument(
            _upload_messages(metadata, source), timeout=self.timeout
        )
        return response

    async def get_document(self, document_id: str) -> pb.Document:
        response: pb.GetDocumentResponse = await self.documents.GetDocument(
            pb.GetDocumentRequest(document_id=document_id), timeout=self.timeout
        )
        return response.document

    async def list_documents(
        self,
        *,
        status: pb.DocumentStatus.ValueType = pb.DOCUMENT_STATUS_UNSPECIFIED,
        language: str = "",
        document_type: str = "",
        tag: str = "",
        page_size: int = 100,
    ) -> AsyncIterator[pb.Document]:
        """Every matching document, newest first, fetching pages as needed."""
        async for page in _pages(
            lambda token: self.documents.ListDocuments(
                pb.ListDocumentsRequest(
                    page_size=page_size,
                    page_token=token,
                    status=status,
                    language=language,
                    document_type=document_type,
                    tag=tag,
                ),
                timeout=self.timeout,
            )
        ):
            for document in page.documents:
                yield document

    async def delete_document(self, document_id: str) -> None:
        await self.documents.DeleteDocument(
            pb.DeleteDocumentRequest(document_id=document_id), timeout=self.timeout
        )

    async def reprocess_document(self, document_id: str) -> pb.Document:
        response: pb.ReprocessDocumentResponse = await self.documents.ReprocessDocument(
            pb.ReprocessDocumentRequest(document_id=document_id), timeout=self.timeout
        )
        return response.document

    async def reprocess_all_documents(
        self, status: pb.DocumentStatus.ValueType = pb.DOCUMENT_STATUS_UNSPECIFIED
    ) -> int:
        response = await self.documents.ReprocessAllDocuments(
            pb.ReprocessAllDocumentsRequest(status=status), timeout=self.timeout
        )
        return int(response.queued_count)

    async def watch_document(self, document_id: str) -> AsyncIterator[pb.WatchDocumentResponse]:
        """Status and progress updates until the document is READY or FAILED."""
        call = self.documents.WatchDocument(pb.WatchDocumentRequest(document_id=document_id))
        async for update in call:
            yield update

    async def wait_for_document(self, document_id: str) -> pb.Document:
        """The document once it is READY or FAILED."""
        async for update in self.watch_document(document_id):
            if update.document.status in _FINAL:
                return update.document
        return await self.get_document(document_id)

    async def search(
        self,
        query: str,
        *,
        top_k: int = 0,
        document_ids: Iterable[str] = (),
        language: str = "",
        document_type: str = "",
        tags: Iterable[str] = (),
        similarity_threshold: float = 0.0,
        mode: common_pb2.RetrievalMode.ValueType = common_pb2.RETRIEVAL_MODE_UNSPECIFIED,
    ) -> pb.SearchResponse:
        """The chunks most relevant to `query`, without a language model."""
        response: pb.SearchResponse = await self.documents.Search(
            pb.SearchRequest(
                query=query,
                top_k=top_k,
                similarity_threshold=similarity_threshold,
                mode=mode,
                filter=common_pb2.RetrievalFilter(
                    document_ids=list(document_ids),
                    language=language,
                    document_type=document_type,
                    tags=list(tags),
                ),
            ),
            timeout=self.timeout,
        )
        return response

    async def ask(
        self,
        question: str,
        *,
        conversation_id: str = "",
        session_id: str = "",
        language: str = "",
        top_k: int = 0,
        deadline_seconds: float | None = None,
    ) -> AsyncIterator[chat_pb.StreamAnswerResponse]:
        """The answer's events as they arrive: started, deltas, citations, usage, done.
        Without a deadline the answer may take as long as the server allows."""
        call = self.chat.StreamAnswer(
            chat_pb.StreamAnswerRequest(
                question=question,
                conversation_id=conversation_id,
                session_id=session_id,
                language=language,
                top_k=top_k,
            ),
            timeout=deadline_seconds,
        )
        async for event in call:
            yield event

    async def list_conversations(
        self, session_id: str = "", page_size: int = 100
    ) -> AsyncIterator[chat_pb.Conversation]:
        """The caller's conversations, newest first, fetching pages as needed."""
        async for page in _pages(
            lambda token: self.chat.ListConversations(
                chat_pb.ListConversationsRequest(
                    session_id=session_id, page_size=page_size, page_token=token
                ),
                timeout=self.timeout,
            )
        ):
            for conversation in page.conversations:
                yield conversation

    async def get_conversation(
        self, conversation_id: str, session_id: str = ""
    ) -> chat_pb.GetConversationResponse:
        response: chat_pb.GetConversationResponse = await self.chat.GetConversation(
            chat_pb.GetConversationRequest(conversation_id=conversation_id, session_id=session_id),
            timeout=self.timeout,
        )
        return response

    async def delete_conversation(self, conversation_id: str, session_id: str = "") -> None:
        await self.chat.DeleteConversation(
            chat_pb.DeleteConversationRequest(
                conversation_id=conversation_id, session_id=session_id
            ),
            timeout=self.timeout,
        )

    async def cost_report(self, days: int = 7) -> admin_pb.GetCostReportResponse:
        """Costs over the last `days` UTC days (admin key)."""
        response: admin_pb.GetCostReportResponse = await self.admin.GetCostReport(
            admin_pb.GetCostReportRequest(days=days), timeout=self.timeout
        )
        return response

    async def budget_status(self, api_key_id: str = "") -> admin_pb.GetBudgetStatusResponse:
        """Today's spending against the global budget, and one key's own (admin key)."""
        response: admin_pb.GetBudgetStatusResponse = await self.admin.GetBudgetStatus(
            admin_pb.GetBudgetStatusRequest(api_key_id=api_key_id), timeout=self.timeout
        )
        return response

    async def create_experiment(self, experiment: admin_pb.Experiment) -> admin_pb.Experiment:
        response: admin_pb.CreateExperimentResponse = await self.admin.CreateExperiment(
            admin_pb.CreateExperimentRequest(experiment=experiment), timeout=self.timeout
        )
        return response.experiment

    async def list_experiments(self) -> list[admin_pb.Experiment]:
        return [
            experiment
            async for page in _pages(
                lambda token: self.admin.ListExperiments(
                    admin_pb.ListExperimentsRequest(page_size=100, page_token=token),
                    timeout=self.timeout,
                )
            )
            for experiment in page.experiments
        ]

    async def experiment_results(self, experiment_id: str) -> admin_pb.GetExperimentResultsResponse:
        """The experiment with its per-variant comparison."""
        response: admin_pb.GetExperimentResultsResponse = await self.admin.GetExperimentResults(
            admin_pb.GetExperimentResultsRequest(experiment_id=experiment_id), timeout=self.timeout
        )
        return response

    async def stop_experiment(self, experiment_id: str) -> admin_pb.Experiment:
        response: admin_pb.UpdateExperimentResponse = await self.admin.UpdateExperiment(
            admin_pb.UpdateExperimentRequest(
                experiment=admin_pb.Experiment(experiment_id=experiment_id, active=False),
                update_mask=FieldMask(paths=["active"]),
            ),
            timeout=self.timeout,
        )
        return response.experiment

    async def create_api_key(
        self,
        name: str,
        role: admin_pb.ApiKeyRole.ValueType,
        *,
        daily_budget_usd: float | None = None,
        rate_limit: str = "",
    ) -> admin_pb.CreateApiKeyResponse:
        request = admin_pb.CreateApiKeyRequest(name=name, role=role, rate_limit=rate_limit)
        if daily_budget_usd is not None:
            request.daily_budget_usd = daily_budget_usd
        response: admin_pb.CreateApiKeyResponse = await self.admin.CreateApiKey(
            request, timeout=self.timeout
        )
        return response

    async def list_api_keys(self, show_revoked: bool = False) -> list[admin_pb.ApiKey]:
        return [
            key
            async for page in _pages(
                lambda token: self.admin.ListApiKeys(
                    admin_pb.ListApiKeysRequest(
                        page_size=100, page_token=token, show_revoked=show_revoked
                    ),
                    timeout=self.timeout,
                )
            )
            for key in page.api_keys
        ]

    async def revoke_api_key(self, api_key_id: str) -> admin_pb.ApiKey:
        response: admin_pb.RevokeApiKeyResponse = await self.admin.RevokeApiKey(
            admin_pb.RevokeApiKeyRequest(api_key_id=api_key_id), timeout=self.timeout
        )
        return response.api_key

    async def clear_rate_limits(self, identity: str = "") -> int:
        """Forgets the counted calls of one identity, or of all; how many counters went."""
        response = await self.admin.ClearRateLimits(
            admin_pb.ClearRateLimitsRequest(identity=identity), timeout=self.timeout
        )
        return int(response.cleared_count)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> ChatbotClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def _pages(fetch: Callable[[str], Awaitable[Any]]) -> AsyncIterator[Any]:
    """Every page of an AIP-158 listing: `fetch(page_token)` until no next token."""
    token = ""
    while True:
        page = await fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return


async def _upload_messages(
    metadata: pb.UploadMetadata, source: bytes | Path
) -> AsyncIterator[pb.UploadDocumentRequest]:
    yield pb.UploadDocumentRequest(metadata=metadata)
    if isinstance(source, bytes):
        for start in range(0, len(source), UPLOAD_PIECE_BYTES):
            yield pb.UploadDocumentRequest(chunk=source[start : start + UPLOAD_PIECE_BYTES])
        return
    with source.open("rb") as file:
        while piece := file.read(UPLOAD_PIECE_BYTES):
            yield pb.UploadDocumentRequest(chunk=piece)


def _file_size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while piece := file.read(1024 * 1024):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()
