"""Typed Python client of the chatbot gRPC service."""

from chatbot_client.client import ChatbotClient
from chatbot_client.sync_client import SyncChatbotClient

__all__ = ["ChatbotClient", "SyncChatbotClient"]
