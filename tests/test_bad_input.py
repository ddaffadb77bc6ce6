"""Input that once reached PostgreSQL or its parsers and came back INTERNAL."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import chat_service_pb2_grpc, document_service_pb2_grpc
from chatbot.v1 import document_service_pb2 as documents_pb
from tests.conftest import LogSink
from tests.polling import eventually
from tests.rpc_errors import error_info


async def test_nul_characters_are_refused_naming_the_field(channel: grpc.aio.Channel) -> None:
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    documents = document_service_pb2_grpc.DocumentServiceStub(channel)
    calls = {
        "question": chat.StreamAnswer(chat_pb.StreamAnswerRequest(question="why\x00?")),
        "title": chat.CreateConversation(chat_pb.CreateConversationRequest(title="a\x00b")),
        "query": documents.Search(documents_pb.SearchRequest(query="port\x00")),
        "comment": chat.SubmitFeedback(
            chat_pb.SubmitFeedbackRequest(
                message_id=str(uuid.uuid4()),
                rating=chat_pb.FEEDBACK_RATING_POSITIVE,
                comment="\x00",
            )
        ),
    }
    for field, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            if isinstance(call, grpc.aio.UnaryStreamCall):
                [event async for event in call]
            else:
                await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in (raised.value.details() or ""), field


async def test_query_syntax_in_a_question_is_only_words(channel: grpc.aio.Channel) -> None:
    documents = document_service_pb2_grpc.DocumentServiceStub(channel)
    for query in ("-" * 40, '"unclosed phrase', "red or -blue or"):
        response = await documents.Search(documents_pb.SearchRequest(query=query), timeout=30)
        assert response.took_ms >= 0


async def test_forged_page_tokens_are_invalid_arguments(channel: grpc.aio.Channel) -> None:
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    scope = "conversations:ip:127.0.0.1:"
    forged = [
        {"c": "0001-01-01T00:00:00", "i": str(uuid.uuid4()), "s": scope},
        {"c": "0001-01-01T00:00:00+00:00", "i": str(uuid.uuid4()), "s": scope},
        {"c": "2026-01-01T00:00:00+00:00", "i": "not-a-uuid", "s": scope},
        ["not", "an", "object"],
    ]
    for raw in forged:
        token = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.ListConversations(chat_pb.ListConversationsRequest(page_token=token))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raw
        assert error_info(raised.value).reason == "INVALID_ARGUMENT"


async def test_a_body_that_is_not_the_methods_message_is_invalid_and_logged(
    channel: grpc.aio.Channel, log_sink: LogSink
) -> None:
    garbage = b"\xff\xff\xff\xff\x0f"
    calls = {
        "/chatbot.v1.ChatService/ListConversations": channel.unary_unary(
            "/chatbot.v1.ChatService/ListConversations"
        )(garbage, metadata=(("x-request-id", "garbage-unary"),)),
        "/chatbot.v1.DocumentService/UploadDocument": channel.stream_unary(
            "/chatbot.v1.DocumentService/UploadDocument"
        )(iter([garbage]), metadata=(("x-request-id", "garbage-stream"),)),
    }
    for method, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert "not a valid message" in (raised.value.details() or "")

    async def both_logged() -> list[dict[str, object]]:
        events = [
            event
            for event in log_sink.events("rpc.finished")
            if str(event.get("request_id", "")).startswith("garbage-")
        ]
        return events if len(events) == 2 else []

    events = await eventually(both_logged)
    assert {e["code"] for e in events} == {"INVALID_ARGUMENT"}


async def test_a_message_over_the_limit_is_refused_with_sizes_and_the_setting(
    channel: grpc.aio.Channel, log_sink: LogSink
) -> None:
    documents = document_service_pb2_grpc.DocumentServiceStub(channel)
    oversized = 5 * 1024 * 1024  # the default MAX_RECEIVE_MESSAGE_BYTES is 4 MiB

    async def pieces() -> AsyncIterator[documents_pb.UploadDocumentRequest]:
        yield documents_pb.UploadDocumentRequest(
            metadata=documents_pb.UploadMetadata(filename="big.pdf")
        )
        yield documents_pb.UploadDocumentRequest(chunk=b"%PDF-" + b"0" * oversized)

    calls = {
        "upload": documents.UploadDocument(
            pieces(), metadata=(("x-request-id", "req-too-large"),), timeout=30
        ),
        "search": documents.Search(documents_pb.SearchRequest(query="x" * oversized), timeout=30),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        error = raised.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, name
        assert "MAX_RECEIVE_MESSAGE_BYTES" in (error.details() or ""), name
        info = error_info(error)
        assert info.reason == "MESSAGE_TOO_LARGE"
        assert int(info.metadata["limit_bytes"]) == 4 * 1024 * 1024
        assert int(info.metadata["size_bytes"]) > oversized

    async def logged() -> list[dict[str, object]]:
        return [
            e for e in log_sink.events("rpc.finished") if e.get("request_id") == "req-too-large"
        ]

    (event,) = await eventually(logged)
    assert event["code"] == "RESOURCE_EXHAUSTED" and event["reason"] == "MESSAGE_TOO_LARGE"
