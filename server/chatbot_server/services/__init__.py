"""The `chatbot.v1` servicers and their registration on a server."""

from __future__ import annotations

import grpc

from chatbot.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    document_service_pb2,
    document_service_pb2_grpc,
)
from chatbot_server.services.admin import AdminServicer
from chatbot_server.services.chat import ChatServicer
from chatbot_server.services.documents import DocumentServicer

CHAT_SERVICE = chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name
DOCUMENT_SERVICE = document_service_pb2.DESCRIPTOR.services_by_name["DocumentService"].full_name
ADMIN_SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
SERVICE_NAMES = (CHAT_SERVICE, DOCUMENT_SERVICE, ADMIN_SERVICE)


def add_services(server: grpc.aio.Server) -> None:
    """Registers the three `chatbot.v1` services."""
    # mypy sees the generated bases' abstract methods; UnimplementedFallback fills the
    # ones a servicer does not define when its class is created.
    chat = ChatServicer()  # type: ignore[abstract]
    documents = DocumentServicer()  # type: ignore[abstract]
    admin = AdminServicer()  # type: ignore[abstract]
    chat_service_pb2_grpc.add_ChatServiceServicer_to_server(chat, server)
    document_service_pb2_grpc.add_DocumentServiceServicer_to_server(documents, server)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)
