"""A blocking client for scripts and the command line, over the asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client.client import ChatbotClient

T = TypeVar("T")


class SyncChatbotClient:
    """Use as `with SyncChatbotClient("127.0.0.1:50051") as client: ...`; not thread-safe."""

    def __init__(self, target: str, *, timeout: float = 30.0, api_key: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(_open(target, timeout, api_key))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(anext(iterator))  # type: ignore[arg-type]
            except StopAsyncIteration:
                return

    def health(self, service: str = "") -> str:
        return self._run(self._client.health(service))

    def upload_document(
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
        return self._run(
            self._client.upload_document(
                source,
                title=title,
                filename=filename,
                language=language,
                document_type=document_type,
                tags=tags,
                overwrite=overwrite,
            )
        )

    def get_document(self, document_id: str) -> pb.Document:
        return self._run(self._client.get_document(document_id))

    def list_documents(
        self,
        *,
        status: pb.DocumentStatus.ValueType = pb.DOCUMENT_STATUS_UNSPECIFIED,
        language: str = "",
        document_type: str = "",
        tag: str = "",
    ) -> Iterator[pb.Document]:
        return self._iterate(
            self._client.list_documents(
                status=status, language=language, document_type=document_type, tag=tag
            )
        )

    def delete_document(self, document_id: str) -> None:
        self._run(self._client.delete_document(document_id))

    def reprocess_document(self, document_id: str) -> pb.Document:
        return self._run(self._client.reprocess_document(document_id))

    def reprocess_all_documents(
        self, status: pb.DocumentStatus.ValueType = pb.DOCUMENT_STATUS_UNSPECIFIED
    ) -> int:
        return self._run(self._client.reprocess_all_documents(status))

    def watch_document(self, document_id: str) -> Iterator[pb.WatchDocumentResponse]:
        return self._iterate(self._client.watch_document(document_id))

    def wait_for_document(self, document_id: str) -> pb.Document:
        return self._run(self._client.wait_for_document(document_id))

    def search(self, query: str, **options: Any) -> pb.SearchResponse:
        """See `ChatbotClient.search` for the options."""
        return self._run(self._client.search(query, **options))

    def ask(self, question: str, **options: Any) -> Iterator[chat_pb.StreamAnswerResponse]:
        """See `ChatbotClient.ask` for the options."""
        return self._iterate(self._client.ask(question, **options))

    def list_conversations(self, session_id: str = "") -> Iterator[chat_pb.Conversation]:
        return self._iterate(self._client.list_conversations(session_id))

    def get_conversation(
        self, conversation_id: str, session_id: str = ""
    ) -> chat_pb.GetConversationResponse:
        return self._run(self._client.get_conversation(conversation_id, session_id))

    def delete_conversation(self, conversation_id: str, session_id: str = "") -> None:
        self._run(self._client.delete_conversation(conversation_id, session_id))

    def cost_report(self, days: int = 7) -> admin_pb.GetCostReportResponse:
        return self._run(self._client.cost_report(days))

    def budget_status(self, api_key_id: str = "") -> admin_pb.GetBudgetStatusResponse:
        return self._run(self._client.budget_status(api_key_id))

    def create_experiment(self, experiment: admin_pb.Experiment) -> admin_pb.Experiment:
        return self._run(self._client.create_experiment(experiment))

    def list_experiments(self) -> list[admin_pb.Experiment]:
        return self._run(self._client.list_experiments())

    def experiment_results(self, experiment_id: str) -> admin_pb.GetExperimentResultsResponse:
        return self._run(self._client.experiment_results(experiment_id))

    def stop_experiment(self, experiment_id: str) -> admin_pb.Experiment:
        return self._run(self._client.stop_experiment(experiment_id))

    def create_api_key(
        self, name: str, role: admin_pb.ApiKeyRole.ValueType, **options: Any
    ) -> admin_pb.CreateApiKeyResponse:
        """See `ChatbotClient.create_api_key` for the options."""
        return self._run(self._client.create_api_key(name, role, **options))

    def list_api_keys(self, show_revoked: bool = False) -> list[admin_pb.ApiKey]:
        return self._run(self._client.list_api_keys(show_revoked))

    def revoke_api_key(self, api_key_id: str) -> admin_pb.ApiKey:
        return self._run(self._client.revoke_api_key(api_key_id))

    def clear_rate_limits(self, identity: str = "") -> int:
        return self._run(self._client.clear_rate_limits(identity))

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncChatbotClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def _open(target: str, seconds_per_call: float, api_key: str | None) -> ChatbotClient:
    # The channel must be created on the loop that will run its calls.
    return ChatbotClient(target, timeout=seconds_per_call, api_key=api_key)
