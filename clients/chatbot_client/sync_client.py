"""A blocking client for scripts and the command line, over the asyncio client.

Each method has the signature and documentation of `ChatbotClient`'s method of the same
name; streams and listings become plain iterators.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from chatbot_client.client import ChatbotClient

P = ParamSpec("P")
T = TypeVar("T")


def _blocking(
    method: Callable[Concatenate[ChatbotClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SyncChatbotClient, P], T]:
    @functools.wraps(method)
    def call(self: SyncChatbotClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._client, *args, **kwargs))

    return call


def _blocking_iterator(
    method: Callable[Concatenate[ChatbotClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[SyncChatbotClient, P], Iterator[T]]:
    @functools.wraps(method)
    def call(self: SyncChatbotClient, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._iterate(method(self._client, *args, **kwargs))

    return call


class SyncChatbotClient:
    """Use as `with SyncChatbotClient("127.0.0.1:50051") as client: ...`; not thread-safe.
    Takes the options of `ChatbotClient`."""

    def __init__(self, target: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(_open(target, options))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._run(anext(iterator))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            # Leaving the loop early closes the stream, which cancels the call.
            self._run(iterator.aclose())  # type: ignore[attr-defined]

    health = _blocking(ChatbotClient.health)
    upload_document = _blocking(ChatbotClient.upload_document)
    get_document = _blocking(ChatbotClient.get_document)
    list_documents = _blocking_iterator(ChatbotClient.list_documents)
    delete_document = _blocking(ChatbotClient.delete_document)
    reprocess_document = _blocking(ChatbotClient.reprocess_document)
    reprocess_all_documents = _blocking(ChatbotClient.reprocess_all_documents)
    watch_document = _blocking_iterator(ChatbotClient.watch_document)
    wait_for_document = _blocking(ChatbotClient.wait_for_document)
    search = _blocking(ChatbotClient.search)
    ask = _blocking_iterator(ChatbotClient.ask)
    answer = _blocking(ChatbotClient.answer)
    create_conversation = _blocking(ChatbotClient.create_conversation)
    list_conversations = _blocking_iterator(ChatbotClient.list_conversations)
    get_conversation = _blocking(ChatbotClient.get_conversation)
    delete_conversation = _blocking(ChatbotClient.delete_conversation)
    submit_feedback = _blocking(ChatbotClient.submit_feedback)
    cost_report = _blocking(ChatbotClient.cost_report)
    budget_status = _blocking(ChatbotClient.budget_status)
    list_answer_logs = _blocking_iterator(ChatbotClient.list_answer_logs)
    list_audit_events = _blocking_iterator(ChatbotClient.list_audit_events)
    feedback_summary = _blocking(ChatbotClient.feedback_summary)
    create_experiment = _blocking(ChatbotClient.create_experiment)
    get_experiment = _blocking(ChatbotClient.get_experiment)
    list_experiments = _blocking(ChatbotClient.list_experiments)
    experiment_results = _blocking(ChatbotClient.experiment_results)
    stop_experiment = _blocking(ChatbotClient.stop_experiment)
    create_api_key = _blocking(ChatbotClient.create_api_key)
    list_api_keys = _blocking(ChatbotClient.list_api_keys)
    revoke_api_key = _blocking(ChatbotClient.revoke_api_key)
    rotate_api_key = _blocking(ChatbotClient.rotate_api_key)
    clear_rate_limits = _blocking(ChatbotClient.clear_rate_limits)

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


async def _open(target: str, options: dict[str, Any]) -> ChatbotClient:
    # The channel must be created on the loop that will run its calls.
    return ChatbotClient(target, **options)
