"""Typed Python client of the chatbot gRPC service."""

from chatbot_client.client import ChatbotClient

__all__ = ["ChatbotClient"]
