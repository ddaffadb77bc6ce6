"""AdminService: its RPCs answer UNIMPLEMENTED until they are built."""

from __future__ import annotations

from chatbot.v1 import admin_service_pb2, admin_service_pb2_grpc
from chatbot_server.services.unimplemented import UnimplementedFallback


class AdminServicer(UnimplementedFallback, admin_service_pb2_grpc.AdminServiceServicer):
    """The `chatbot.v1.AdminService` servicer."""

    SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]
