"""An asyncio client holding one channel and typed stubs for every chatbot.v1 service."""

from __future__ import annotations

from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2_grpc, document_service_pb2_grpc


class ChatbotClient:
    """Use as `async with ChatbotClient("127.0.0.1:50051") as client: ...`."""

    def __init__(self, target: str, *, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(target)
        self.chat = chat_service_pb2_grpc.ChatServiceStub(self._channel)
        self.documents = document_service_pb2_grpc.DocumentServiceStub(self._channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def health(self, service: str = "") -> str:
        """The serving status of the server ("") or of one service, e.g. "SERVING"."""
        response = await self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> ChatbotClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
