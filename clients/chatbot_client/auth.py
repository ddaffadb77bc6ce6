"""Sends the API key with every call, whatever its kind.

grpc.aio files a channel interceptor under the first of the four kinds it implements, so
each kind gets an interceptor object of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class _WithApiKey:
    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_WithApiKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_key(details), request)


class _UnaryStream(_WithApiKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_key(details), request)


class _StreamUnary(_WithApiKey, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_key(details), requests)


class _StreamStream(_WithApiKey, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_key(details), requests)


def api_key_interceptors(api_key: str) -> list[Any]:
    """Interceptors that add `authorization: Bearer <key>` to every call on a channel."""
    return [kind(api_key) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
