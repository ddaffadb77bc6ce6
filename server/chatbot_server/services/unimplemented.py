"""Answers for RPCs of the contract that this server version does not implement yet."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from chatbot_server.errors import ServiceError


class UnimplementedFallback:
    """Mixin for a servicer: every RPC of `SERVICE` the subclass does not define answers
    UNIMPLEMENTED naming the method, instead of the generated base's bare
    "Method not implemented!", so a caller knows exactly what is missing."""

    SERVICE: ServiceDescriptor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.SERVICE.methods:
            if method.name not in cls.__dict__:
                setattr(cls, method.name, _unimplemented(f"/{cls.SERVICE.full_name}/{method.name}"))


def _unimplemented(full_name: str) -> Any:
    async def unimplemented(self: object, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise ServiceError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{full_name} is part of the chatbot.v1 contract but not implemented by this "
            "server version",
            reason="NOT_IMPLEMENTED",
            metadata={"method": full_name},
        )

    return unimplemented
