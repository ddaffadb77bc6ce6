"""A program written against the installed `chatbot-client` wheel alone, as a downstream
user writes one. The tests run it on each available Python and check it with mypy --strict.

python uses_the_client.py TARGET PDF  ->  prints a JSON report of what it saw
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from chatbot.v1 import document_service_pb2
from chatbot_client import (
    Answer,
    AnswerFinished,
    AnswerStarted,
    ChatbotClient,
    RetrievedChunks,
    SyncChatbotClient,
    TextDelta,
)
from chatbot_client.errors import ChatbotError, InvalidArgumentError, NotFoundError

QUESTION = "What does a blinking red status LED mean?"


def blocking_session(target: str, pdf: Path) -> dict[str, object]:
    report: dict[str, object] = {"python": sys.version.split()[0]}
    with SyncChatbotClient(target, timeout=30.0) as client:
        report["health"] = client.health()
        uploaded = client.upload_document(pdf, title="Downstream")
        document = client.wait_for_document(uploaded.document.document_id)
        report["status"] = document_service_pb2.DocumentStatus.Name(document.status)
        pieces: list[str] = []
        kinds: list[str] = []
        for event in client.ask(
            QUESTION, include_retrieval=True, document_ids=[document.document_id]
        ):
            kinds.append(type(event).__name__)
            if isinstance(event, TextDelta):
                pieces.append(event.text)
            elif isinstance(event, RetrievedChunks):
                report["retrieved_pages"] = sorted({c.page_number for c in event.chunks})
            elif isinstance(event, AnswerFinished):
                report["finish_reason"] = event.finish_reason
        report["answer"] = "".join(pieces)
        report["event_kinds"] = kinds
        try:
            client.get_document("00000000-0000-4000-8000-000000000000")
        except NotFoundError as error:
            report["not_found"] = [error.code.name, error.reason]
        try:
            client.search("anything", top_k=500)
        except InvalidArgumentError as error:
            report["invalid_fields"] = [violation.field for violation in error.field_violations]
        try:
            client.get_document("not-a-uuid", timeout=5.0)
        except ChatbotError as error:
            report["caught_as_base_class"] = type(error).__name__
        for event in client.ask(QUESTION):
            if isinstance(event, AnswerStarted):
                report["left_early"] = event.request_id
                break
    return report


async def async_session(target: str) -> str:
    async with ChatbotClient(target, deadlines={"StreamAnswer": 60.0}) as client:
        answer: Answer = await client.answer(QUESTION)
        return answer.finished.grounding if answer.finished is not None else ""


def main() -> None:
    target, pdf = sys.argv[1], Path(sys.argv[2])
    report = blocking_session(target, pdf)
    report["async_grounding"] = asyncio.run(async_session(target))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
