"""ChatService: streamed answers, conversations and feedback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import grpc

from chatbot.v1 import chat_service_pb2 as pb
from chatbot.v1 import chat_service_pb2_grpc, common_pb2
from chatbot_server.answers import chat_store
from chatbot_server.answers.answering import Question
from chatbot_server.answers.chat_store import ConversationRecord, MessageRecord
from chatbot_server.governance.caller import current_caller, request_facts_of
from chatbot_server.platform import pagination
from chatbot_server.platform.call_context import CallContext, call_in_progress
from chatbot_server.platform.errors import ServiceError, bad_request
from chatbot_server.platform.validation import bounded_int, bounded_text, language_code, parse_uuid
from chatbot_server.services.answer_runs import AnswerRuns
from chatbot_server.services.conversions import timestamp
from chatbot_server.services.documents import search_filter

_ROLES = {"user": pb.MESSAGE_ROLE_USER, "assistant": pb.MESSAGE_ROLE_ASSISTANT}
_STATUSES = {
    "complete": pb.MESSAGE_STATUS_COMPLETE,
    "failed": pb.MESSAGE_STATUS_FAILED,
    "cancelled": pb.MESSAGE_STATUS_CANCELLED,
}
_RATINGS = {pb.FEEDBACK_RATING_POSITIVE: "positive", pb.FEEDBACK_RATING_NEGATIVE: "negative"}
TITLE_CHARS = 80


class ChatServicer(chat_service_pb2_grpc.ChatServiceServicer):
    """The `chatbot.v1.ChatService` servicer."""

    def __init__(self, pool: asyncpg.Pool, answers: AnswerRuns) -> None:
        self._pool = pool
        self._answers = answers

    async def StreamAnswer(
        self, request: pb.StreamAnswerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAnswerResponse]:
        call = call_in_progress()
        text = bounded_text("question", request.question, 4000, required=True)
        session_id = bounded_text("session_id", request.session_id, 200)
        where = search_filter(request.filter)
        top_k = bounded_int("top_k", request.top_k, 0, 50)
        language = language_code("language", request.language)
        conversation_id = None
        if request.conversation_id:
            conversation = await self._owned(request.conversation_id, session_id, call)
            await chat_store.set_title_if_empty(self._pool, conversation.id, _title(text))
            conversation_id = conversation.id
        remaining = context.time_remaining()
        question = Question(
            text=text,
            conversation_id=conversation_id,
            session_id=session_id,
            title=_title(text),
            request=request_facts_of(call),
            language=language,
            where=where,
            top_k=top_k,
            include_retrieval=request.include_retrieval,
            deadline_seconds=remaining if remaining is not None else None,
            api_key=current_caller().api_key,
            budget_exhausted=current_caller().budget_exhausted,
        )
        async for message in self._answers.ask(question, context):
            yield message

    async def ResumeAnswer(
        self, request: pb.ResumeAnswerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAnswerResponse]:
        answer_id = str(parse_uuid("answer_id", request.answer_id))
        if request.after_sequence < 0:
            raise bad_request("after_sequence", "must not be negative")
        identity = call_in_progress().identity
        async for message in self._answers.resume(answer_id, request.after_sequence, identity):
            yield message

    async def CancelAnswer(
        self, request: pb.CancelAnswerRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelAnswerResponse:
        answer_id = str(parse_uuid("answer_id", request.answer_id))
        cancelled = await self._answers.cancel(answer_id, call_in_progress().identity)
        return pb.CancelAnswerResponse(cancelled=cancelled)

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: object
    ) -> pb.CreateConversationResponse:
        call = call_in_progress()
        conversation = await chat_store.create_conversation(
            self._pool,
            call.identity,
            bounded_text("session_id", request.session_id, 200),
            bounded_text("title", request.title, 200),
        )
        return pb.CreateConversationResponse(conversation=_conversation(conversation))

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: object
    ) -> pb.GetConversationResponse:
        conversation = await self._owned(
            request.conversation_id, request.session_id, call_in_progress()
        )
        messages = await chat_store.list_messages(self._pool, conversation.id)
        return pb.GetConversationResponse(
            conversation=_conversation(conversation), messages=[_message(m) for m in messages]
        )

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: object
    ) -> pb.ListConversationsResponse:
        call = call_in_progress()
        session_id = bounded_text("session_id", request.session_id, 200)
        scope = f"conversations:{call.identity}:{session_id}"
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, scope)
        records = await chat_store.list_conversations(
            self._pool, call.identity, session_id, limit + 1, after
        )
        page, token = pagination.split_page(records, limit, scope)
        return pb.ListConversationsResponse(
            conversations=[_conversation(r) for r in page], next_page_token=token
        )

    async def DeleteConversation(
        self, request: pb.DeleteConversationRequest, context: object
    ) -> pb.DeleteConversationResponse:
        conversation = await self._owned(
            request.conversation_id, request.session_id, call_in_progress()
        )
        await chat_store.delete_conversation(self._pool, conversation.id)
        return pb.DeleteConversationResponse()

    async def SubmitFeedback(
        self, request: pb.SubmitFeedbackRequest, context: object
    ) -> pb.SubmitFeedbackResponse:
        call = call_in_progress()
        message_id = parse_uuid("message_id", request.message_id)
        rating = _RATINGS.get(request.rating)
        if rating is None:
            raise bad_request(
                "rating", "must be FEEDBACK_RATING_POSITIVE or FEEDBACK_RATING_NEGATIVE"
            )
        comment = bounded_text("comment", request.comment, 2000)
        message = await chat_store.get_message(self._pool, message_id)
        if message is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND, f"no message {message_id}", reason="MESSAGE_NOT_FOUND"
            )
        await self._owned(str(message.conversation_id), request.session_id, call)
        if message.role != "assistant":
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "feedback is for answers; this message is a question",
                reason="NOT_AN_ANSWER",
            )
        record = await chat_store.upsert_feedback(
            self._pool, message_id, call.identity, rating, comment
        )
        return pb.SubmitFeedbackResponse(
            feedback=pb.Feedback(
                feedback_id=str(record.id),
                message_id=str(record.message_id),
                rating=request.rating,
                comment=record.comment,
                create_time=timestamp(record.created_at),
                update_time=timestamp(record.updated_at),
            )
        )

    async def _owned(self, raw_id: str, session_id: str, call: CallContext) -> ConversationRecord:
        conversation_id: UUID = parse_uuid("conversation_id", raw_id)
        conversation = await chat_store.get_conversation(self._pool, conversation_id)
        if conversation is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no conversation {conversation_id}",
                reason="CONVERSATION_NOT_FOUND",
            )
        if conversation.owner != call.identity:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                "this conversation belongs to another caller",
                reason="CONVERSATION_NOT_OWNED",
            )
        if conversation.session_id and conversation.session_id != session_id:
            # The caller's own conversation, started in a session: say what to send.
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                "this conversation was started in a session; send that session_id "
                "(the session it was listed under)",
                reason="CONVERSATION_NOT_OWNED",
            )
        return conversation


def _title(question: str) -> str:
    return question if len(question) <= TITLE_CHARS else question[: TITLE_CHARS - 1] + "…"


def _conversation(record: ConversationRecord) -> pb.Conversation:
    return pb.Conversation(
        conversation_id=str(record.id),
        title=record.title,
        session_id=record.session_id,
        message_count=record.message_count,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )


def _message(record: MessageRecord) -> pb.Message:
    return pb.Message(
        message_id=str(record.id),
        conversation_id=str(record.conversation_id),
        role=_ROLES[record.role],
        content=record.content,
        citations=[common_pb2.Citation(**citation) for citation in record.citations],
        status=_STATUSES[record.status],
        model=record.model,
        create_time=timestamp(record.created_at),
    )
