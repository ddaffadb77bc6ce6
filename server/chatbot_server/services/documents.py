"""DocumentService: its RPCs answer UNIMPLEMENTED until they are built."""

from __future__ import annotations

from chatbot.v1 import document_service_pb2, document_service_pb2_grpc
from chatbot_server.services.unimplemented import UnimplementedFallback


class DocumentServicer(UnimplementedFallback, document_service_pb2_grpc.DocumentServiceServicer):
    """The `chatbot.v1.DocumentService` servicer."""

    SERVICE = document_service_pb2.DESCRIPTOR.services_by_name["DocumentService"]
