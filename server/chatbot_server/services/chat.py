"""ChatService: its RPCs answer UNIMPLEMENTED until they are built."""

from __future__ import annotations

from chatbot.v1 import chat_service_pb2, chat_service_pb2_grpc
from chatbot_server.services.unimplemented import UnimplementedFallback


class ChatServicer(UnimplementedFallback, chat_service_pb2_grpc.ChatServiceServicer):
    """The `chatbot.v1.ChatService` servicer."""

    SERVICE = chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"]
