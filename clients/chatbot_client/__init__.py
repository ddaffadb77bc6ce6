"""Typed Python client of the chatbot gRPC service."""

from chatbot_client.client import DEFAULT_DEADLINES, ChatbotClient
from chatbot_client.errors import ChatbotError
from chatbot_client.events import (
    Answer,
    AnswerEvent,
    AnswerFinished,
    AnswerStarted,
    Citations,
    Heartbeat,
    RetrievedChunks,
    TextDelta,
    Usage,
)
from chatbot_client.sync_client import SyncChatbotClient

__all__ = [
    "DEFAULT_DEADLINES",
    "Answer",
    "AnswerEvent",
    "AnswerFinished",
    "AnswerStarted",
    "ChatbotClient",
    "ChatbotError",
    "Citations",
    "Heartbeat",
    "RetrievedChunks",
    "SyncChatbotClient",
    "TextDelta",
    "Usage",
]
