"""An asyncio client holding one channel and typed stubs for every chatbot.v1 service."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.wrappers_pb2 import Int32Value, StringValue

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import (
    admin_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    common_pb2,
    document_service_pb2,
    document_service_pb2_grpc,
)
from chatbot_client.channel import open_channel
from chatbot_client.errors import ChatbotError, InternalError, UnavailableError, chatbot_errors
from chatbot_client.events import Answer, AnswerEvent, answer_event

pb = document_service_pb2
chat_pb = chat_service_pb2
T = TypeVar("T")
UPLOAD_PIECE_BYTES = 256 * 1024
# A document in one of these is done: processing will not change it.
FINAL_STATUSES = (pb.DOCUMENT_STATUS_READY, pb.DOCUMENT_STATUS_FAILED)
# How many times one answer is resumed after its connection broke before giving up.
RESUME_ATTEMPTS = 3
# The wait before the first resume, doubled before each next one: when a server dies, all
# of its callers come back at once.
RESUME_BACKOFF_SECONDS = 0.1
# How long an answer left unread may take to be cancelled.
CANCEL_SECONDS = 15.0
# Seconds a call may take unless the caller says otherwise; other methods use `timeout`.
DEFAULT_DEADLINES: Mapping[str, float] = {
    "UploadDocument": 600.0,
    "StreamAnswer": 300.0,
    "ResumeAnswer": 300.0,
    "WatchDocument": 3600.0,
}
# grpc.health.v1 messages are wire-compatible with these wrappers (field 1: a string; an
# enum), which spares the client a dependency on grpcio-health-checking.
_HEALTH_STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class ChatbotClient:
    """Use as `async with ChatbotClient("127.0.0.1:50051") as client: ...`.

    The methods below cover every RPC with Python types, default deadlines, pagination and
    streaming taken care of, and raise `chatbot_client.errors.ChatbotError` subclasses. The
    raw stubs (`chat`, `documents`, `admin`) stay available and raise grpc's own errors.

    `timeout`: seconds per call for methods without their own default (`DEFAULT_DEADLINES`,
    overridden by `deadlines`); every method also takes `timeout=` for one call.
    `tls` / `root_certificates` (PEM): connect over TLS; `certificate_chain` and
    `private_key` (PEM): the client certificate a server with mutual TLS requires.
    `metadata`: headers sent with every call. Idempotent reads are retried when the server
    is UNAVAILABLE.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        deadlines: Mapping[str, float] | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.deadlines = {**DEFAULT_DEADLINES, **(deadlines or {})}
        self._channel = open_channel(
            target,
            api_key=api_key,
            metadata=metadata,
            tls=tls,
            root_certificates=root_certificates,
            certificate_chain=certificate_chain,
            private_key=private_key,
            options=options,
        )
        self.chat = chat_service_pb2_grpc.ChatServiceStub(self._channel)
        self.documents = document_service_pb2_grpc.DocumentServiceStub(self._channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=Int32Value.FromString,
        )

    def _deadline(self, method: str, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        return self.deadlines.get(method, self.timeout)

    async def _call(
        self, method: str, rpc: Callable[..., Any], request: Any, timeout: float | None
    ) -> Any:
        """One unary (or client-streaming) call with its deadline and typed errors."""
        with chatbot_errors():
            return await rpc(request, timeout=self._deadline(method, timeout))

    async def _stream(
        self, method: str, rpc: Callable[..., Any], request: Any, timeout: float | None
    ) -> AsyncIterator[Any]:
        """A server stream's messages; stopping early cancels the call on the server."""
        call = rpc(request, timeout=self._deadline(method, timeout))
        try:
            with chatbot_errors():
                async for message in call:
                    yield message
        finally:
            call.cancel()

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The serving status of the server ("") or of one service, e.g. "SERVING"."""
        response = await self._call(
            "Check", self._health_check, StringValue(value=service), timeout
        )
        return _HEALTH_STATUSES.get(response.value, "UNKNOWN")

    # DocumentService

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
        timeout: float | None = None,
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
        response: pb.UploadDocumentResponse = await self._call(
            "UploadDocument",
            self.documents.UploadDocument,
            _upload_messages(metadata, source),
            timeout,
        )
        return response

    async def get_document(self, document_id: str, *, timeout: float | None = None) -> pb.Document:
        response: pb.GetDocumentResponse = await self._call(
            "GetDocument",
            self.documents.GetDocument,
            pb.GetDocumentRequest(document_id=document_id),
            timeout,
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
        timeout: float | None = None,
    ) -> AsyncIterator[pb.Document]:
        """Every matching document, newest first, fetching pages as needed."""
        async for page in _pages(
            lambda token: self._call(
                "ListDocuments",
                self.documents.ListDocuments,
                pb.ListDocumentsRequest(
                    page_size=page_size,
                    page_token=token,
                    status=status,
                    language=language,
                    document_type=document_type,
                    tag=tag,
                ),
                timeout,
            )
        ):
            for document in page.documents:
                yield document

    async def delete_document(self, document_id: str, *, timeout: float | None = None) -> None:
        await self._call(
            "DeleteDocument",
            self.documents.DeleteDocument,
            pb.DeleteDocumentRequest(document_id=document_id),
            timeout,
        )

    async def reprocess_document(
        self, document_id: str, *, timeout: float | None = None
    ) -> pb.Document:
        response: pb.ReprocessDocumentResponse = await self._call(
            "ReprocessDocument",
            self.documents.ReprocessDocument,
            pb.ReprocessDocumentRequest(document_id=document_id),
            timeout,
        )
        return response.document

    async def reprocess_all_documents(
        self,
        status: pb.DocumentStatus.ValueType = pb.DOCUMENT_STATUS_UNSPECIFIED,
        *,
        timeout: float | None = None,
    ) -> int:
        """Queues every document (in `status`, if given) for processing; how many."""
        response: pb.ReprocessAllDocumentsResponse = await self._call(
            "ReprocessAllDocuments",
            self.documents.ReprocessAllDocuments,
            pb.ReprocessAllDocumentsRequest(status=status),
            timeout,
        )
        return response.queued_count

    async def watch_document(
        self, document_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[pb.WatchDocumentResponse]:
        """Status and progress updates until the document is READY or FAILED."""
        async for update in self._stream(
            "WatchDocument",
            self.documents.WatchDocument,
            pb.WatchDocumentRequest(document_id=document_id),
            timeout,
        ):
            yield update

    async def wait_for_document(
        self, document_id: str, *, timeout: float | None = None
    ) -> pb.Document:
        """The document once it is READY or FAILED."""
        async for update in self.watch_document(document_id, timeout=timeout):
            if update.document.status in FINAL_STATUSES:
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
        filter: common_pb2.RetrievalFilter | None = None,
        timeout: float | None = None,
    ) -> pb.SearchResponse:
        """The chunks most relevant to `query`, without a language model. Restrict the
        documents with `filter` or with `document_ids`, `language`, `document_type`, `tags`."""
        response: pb.SearchResponse = await self._call(
            "Search",
            self.documents.Search,
            pb.SearchRequest(
                query=query,
                top_k=top_k,
                similarity_threshold=similarity_threshold,
                mode=mode,
                filter=_filter(filter, document_ids, language, document_type, tags),
            ),
            timeout,
        )
        return response

    # ChatService

    async def ask(
        self,
        question: str,
        *,
        conversation_id: str = "",
        session_id: str = "",
        language: str = "",
        top_k: int = 0,
        include_retrieval: bool = False,
        document_ids: Iterable[str] = (),
        document_language: str = "",
        document_type: str = "",
        tags: Iterable[str] = (),
        filter: common_pb2.RetrievalFilter | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """The answer's events as they arrive: `AnswerStarted`, `TextDelta`s, `Citations`,
        `Usage`, `AnswerFinished` (see `chatbot_client.events`). `filter`, or `document_*`
        and `tags`, restrict which documents the answer may draw on. When the connection
        breaks (UNAVAILABLE, or a stream reset) the answer is resumed where it broke, on any
        server, without an event lost or repeated. Leaving the loop early cancels the
        answer."""
        request = chat_pb.StreamAnswerRequest(
            question=question,
            conversation_id=conversation_id,
            session_id=session_id,
            language=language,
            top_k=top_k,
            include_retrieval=include_retrieval,
            filter=_filter(filter, document_ids, document_language, document_type, tags),
        )
        stream = self._stream("StreamAnswer", self.chat.StreamAnswer, request, timeout)
        answer_id, last, resumes, ended = "", 0, 0, False
        try:
            while True:
                try:
                    async for message in stream:
                        kind = message.WhichOneof("event")
                        if kind == "started":
                            answer_id = message.started.answer_id
                        ended = kind == "done"
                        last = message.sequence or last
                        yield answer_event(message)
                    return
                except ChatbotError as error:
                    resumes += 1
                    if not _connection_broke(error) or not answer_id or resumes > RESUME_ATTEMPTS:
                        raise
                    await asyncio.sleep(RESUME_BACKOFF_SECONDS * 2 ** (resumes - 1))
                stream = self._stream(
                    "ResumeAnswer",
                    self.chat.ResumeAnswer,
                    chat_pb.ResumeAnswerRequest(answer_id=answer_id, after_sequence=last),
                    timeout,
                )
        finally:
            if answer_id and not ended:
                # The caller stopped reading: stop the answer now rather than leave it
                # waiting on the server for a resume.
                with contextlib.suppress(ChatbotError):
                    await self.cancel_answer(answer_id, timeout=CANCEL_SECONDS)

    async def resume_answer(
        self, answer_id: str, after_sequence: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[AnswerEvent]:
        """An answer's events after `after_sequence` (0: from the start), then live until
        it ends; from any server, for the identity that asked."""
        request = chat_pb.ResumeAnswerRequest(answer_id=answer_id, after_sequence=after_sequence)
        async for message in self._stream("ResumeAnswer", self.chat.ResumeAnswer, request, timeout):
            yield answer_event(message)

    async def cancel_answer(self, answer_id: str, *, timeout: float | None = None) -> bool:
        """Stops an answer wherever it runs; False when it had already ended."""
        response: chat_pb.CancelAnswerResponse = await self._call(
            "CancelAnswer",
            self.chat.CancelAnswer,
            chat_pb.CancelAnswerRequest(answer_id=answer_id),
            timeout,
        )
        return response.cancelled

    async def answer(self, /, question: str, **options: Any) -> Answer:
        """The whole answer once it has ended; takes the options of `ask`."""
        return Answer.from_events([event async for event in self.ask(question, **options)])

    async def create_conversation(
        self, title: str = "", session_id: str = "", *, timeout: float | None = None
    ) -> chat_pb.Conversation:
        response: chat_pb.CreateConversationResponse = await self._call(
            "CreateConversation",
            self.chat.CreateConversation,
            chat_pb.CreateConversationRequest(title=title, session_id=session_id),
            timeout,
        )
        return response.conversation

    async def list_conversations(
        self, session_id: str = "", page_size: int = 100, *, timeout: float | None = None
    ) -> AsyncIterator[chat_pb.Conversation]:
        """The caller's conversations, newest first, fetching pages as needed."""
        async for page in _pages(
            lambda token: self._call(
                "ListConversations",
                self.chat.ListConversations,
                chat_pb.ListConversationsRequest(
                    session_id=session_id, page_size=page_size, page_token=token
                ),
                timeout,
            )
        ):
            for conversation in page.conversations:
                yield conversation

    async def get_conversation(
        self, conversation_id: str, session_id: str = "", *, timeout: float | None = None
    ) -> chat_pb.GetConversationResponse:
        """The conversation and its messages, oldest first."""
        response: chat_pb.GetConversationResponse = await self._call(
            "GetConversation",
            self.chat.GetConversation,
            chat_pb.GetConversationRequest(conversation_id=conversation_id, session_id=session_id),
            timeout,
        )
        return response

    async def delete_conversation(
        self, conversation_id: str, session_id: str = "", *, timeout: float | None = None
    ) -> None:
        await self._call(
            "DeleteConversation",
            self.chat.DeleteConversation,
            chat_pb.DeleteConversationRequest(
                conversation_id=conversation_id, session_id=session_id
            ),
            timeout,
        )

    async def submit_feedback(
        self,
        message_id: str,
        rating: chat_pb.FeedbackRating.ValueType,
        comment: str = "",
        session_id: str = "",
        *,
        timeout: float | None = None,
    ) -> chat_pb.Feedback:
        """Rates an answer (its `assistant_message_id`); again replaces the rating."""
        response: chat_pb.SubmitFeedbackResponse = await self._call(
            "SubmitFeedback",
            self.chat.SubmitFeedback,
            chat_pb.SubmitFeedbackRequest(
                message_id=message_id, rating=rating, comment=comment, session_id=session_id
            ),
            timeout,
        )
        return response.feedback

    # AdminService (admin key)

    async def cost_report(
        self, days: int = 7, *, timeout: float | None = None
    ) -> admin_pb.GetCostReportResponse:
        """Costs over the last `days` UTC days."""
        response: admin_pb.GetCostReportResponse = await self._call(
            "GetCostReport",
            self.admin.GetCostReport,
            admin_pb.GetCostReportRequest(days=days),
            timeout,
        )
        return response

    async def budget_status(
        self, api_key_id: str = "", *, timeout: float | None = None
    ) -> admin_pb.GetBudgetStatusResponse:
        """Today's spending against the global budget, and one key's own."""
        response: admin_pb.GetBudgetStatusResponse = await self._call(
            "GetBudgetStatus",
            self.admin.GetBudgetStatus,
            admin_pb.GetBudgetStatusRequest(api_key_id=api_key_id),
            timeout,
        )
        return response

    async def list_answer_logs(
        self,
        *,
        conversation_id: str = "",
        llm_model: str = "",
        errors_only: bool = False,
        experiment_id: str = "",
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[admin_pb.AnswerLog]:
        """Every answer's log row, newest first, fetching pages as needed."""
        async for page in _pages(
            lambda token: self._call(
                "ListAnswerLogs",
                self.admin.ListAnswerLogs,
                admin_pb.ListAnswerLogsRequest(
                    page_size=page_size,
                    page_token=token,
                    conversation_id=conversation_id,
                    llm_model=llm_model,
                    errors_only=errors_only,
                    experiment_id=experiment_id,
                ),
                timeout,
            )
        ):
            for log in page.answer_logs:
                yield log

    async def list_audit_events(
        self,
        *,
        actor: str = "",
        action: str = "",
        outcome: admin_pb.AuditOutcome.ValueType = admin_pb.AUDIT_OUTCOME_UNSPECIFIED,
        since: datetime | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[admin_pb.AuditEvent]:
        """The audit trail, newest first, fetching pages as needed."""
        request = admin_pb.ListAuditEventsRequest(
            page_size=page_size, actor=actor, action=action, outcome=outcome
        )
        if since is not None:
            request.start_time.FromDatetime(since)

        def page(token: str) -> Awaitable[Any]:
            request.page_token = token
            return self._call("ListAuditEvents", self.admin.ListAuditEvents, request, timeout)

        async for listed in _pages(page):
            for event in listed.audit_events:
                yield event

    async def feedback_summary(
        self, days: int = 7, experiment_id: str = "", *, timeout: float | None = None
    ) -> admin_pb.GetFeedbackSummaryResponse:
        response: admin_pb.GetFeedbackSummaryResponse = await self._call(
            "GetFeedbackSummary",
            self.admin.GetFeedbackSummary,
            admin_pb.GetFeedbackSummaryRequest(days=days, experiment_id=experiment_id),
            timeout,
        )
        return response

    async def create_experiment(
        self, experiment: admin_pb.Experiment, *, timeout: float | None = None
    ) -> admin_pb.Experiment:
        response: admin_pb.CreateExperimentResponse = await self._call(
            "CreateExperiment",
            self.admin.CreateExperiment,
            admin_pb.CreateExperimentRequest(experiment=experiment),
            timeout,
        )
        return response.experiment

    async def get_experiment(
        self, experiment_id: str, *, timeout: float | None = None
    ) -> admin_pb.Experiment:
        response: admin_pb.GetExperimentResponse = await self._call(
            "GetExperiment",
            self.admin.GetExperiment,
            admin_pb.GetExperimentRequest(experiment_id=experiment_id),
            timeout,
        )
        return response.experiment

    async def list_experiments(self, *, timeout: float | None = None) -> list[admin_pb.Experiment]:
        return [
            experiment
            async for page in _pages(
                lambda token: self._call(
                    "ListExperiments",
                    self.admin.ListExperiments,
                    admin_pb.ListExperimentsRequest(page_size=100, page_token=token),
                    timeout,
                )
            )
            for experiment in page.experiments
        ]

    async def experiment_results(
        self, experiment_id: str, *, timeout: float | None = None
    ) -> admin_pb.GetExperimentResultsResponse:
        """The experiment with its per-variant comparison."""
        response: admin_pb.GetExperimentResultsResponse = await self._call(
            "GetExperimentResults",
            self.admin.GetExperimentResults,
            admin_pb.GetExperimentResultsRequest(experiment_id=experiment_id),
            timeout,
        )
        return response

    async def stop_experiment(
        self, experiment_id: str, *, timeout: float | None = None
    ) -> admin_pb.Experiment:
        response: admin_pb.UpdateExperimentResponse = await self._call(
            "UpdateExperiment",
            self.admin.UpdateExperiment,
            admin_pb.UpdateExperimentRequest(
                experiment=admin_pb.Experiment(experiment_id=experiment_id, active=False),
                update_mask=FieldMask(paths=["active"]),
            ),
            timeout,
        )
        return response.experiment

    async def create_api_key(
        self,
        name: str,
        role: admin_pb.ApiKeyRole.ValueType,
        *,
        daily_budget_usd: float | None = None,
        rate_limit: str = "",
        expires_in: timedelta | None = None,
        timeout: float | None = None,
    ) -> admin_pb.CreateApiKeyResponse:
        """A new key; the response holds its secret, shown this once."""
        request = admin_pb.CreateApiKeyRequest(name=name, role=role, rate_limit=rate_limit)
        if daily_budget_usd is not None:
            request.daily_budget_usd = daily_budget_usd
        if expires_in is not None:
            request.expires_in.FromTimedelta(expires_in)
        response: admin_pb.CreateApiKeyResponse = await self._call(
            "CreateApiKey", self.admin.CreateApiKey, request, timeout
        )
        return response

    async def list_api_keys(
        self, show_revoked: bool = False, *, timeout: float | None = None
    ) -> list[admin_pb.ApiKey]:
        return [
            key
            async for page in _pages(
                lambda token: self._call(
                    "ListApiKeys",
                    self.admin.ListApiKeys,
                    admin_pb.ListApiKeysRequest(
                        page_size=100, page_token=token, show_revoked=show_revoked
                    ),
                    timeout,
                )
            )
            for key in page.api_keys
        ]

    async def revoke_api_key(
        self, api_key_id: str, *, timeout: float | None = None
    ) -> admin_pb.ApiKey:
        response: admin_pb.RevokeApiKeyResponse = await self._call(
            "RevokeApiKey",
            self.admin.RevokeApiKey,
            admin_pb.RevokeApiKeyRequest(api_key_id=api_key_id),
            timeout,
        )
        return response.api_key

    async def rotate_api_key(
        self,
        api_key_id: str,
        *,
        overlap: timedelta | None = None,
        expires_in: timedelta | None = None,
        timeout: float | None = None,
    ) -> admin_pb.RotateApiKeyResponse:
        """A new secret for the key, shown this once; the old one works for `overlap`
        (the server's default, 24 h, when None)."""
        request = admin_pb.RotateApiKeyRequest(api_key_id=api_key_id)
        if overlap is not None:
            request.overlap.FromTimedelta(overlap)
        if expires_in is not None:
            request.expires_in.FromTimedelta(expires_in)
        response: admin_pb.RotateApiKeyResponse = await self._call(
            "RotateApiKey", self.admin.RotateApiKey, request, timeout
        )
        return response

    async def clear_rate_limits(self, identity: str = "", *, timeout: float | None = None) -> int:
        """Forgets the counted calls of one identity, or of all; how many counters went."""
        response: admin_pb.ClearRateLimitsResponse = await self._call(
            "ClearRateLimits",
            self.admin.ClearRateLimits,
            admin_pb.ClearRateLimitsRequest(identity=identity),
            timeout,
        )
        return response.cleared_count

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


def _filter(
    given: common_pb2.RetrievalFilter | None,
    document_ids: Iterable[str],
    language: str,
    document_type: str,
    tags: Iterable[str],
) -> common_pb2.RetrievalFilter:
    """`given`, or a filter of the separate fields; both at once would be ambiguous."""
    built = common_pb2.RetrievalFilter(
        document_ids=list(document_ids),
        language=language,
        document_type=document_type,
        tags=list(tags),
    )
    if given is None:
        return built
    if built.ByteSize():
        raise ValueError("give either filter= or document_ids/language/document_type/tags")
    return given


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


def _connection_broke(error: ChatbotError) -> bool:
    """Whether a stream ended because the way to the server broke rather than by the
    server's word: UNAVAILABLE, or INTERNAL without the ErrorInfo every error of the server
    carries (a proxy resetting the stream when the server behind it died)."""
    return isinstance(error, UnavailableError) or (
        isinstance(error, InternalError) and not error.reason
    )
