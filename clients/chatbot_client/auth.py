"""Sends the API key and the caller's own metadata with every call, whatever its kind.

grpc.aio files a channel interceptor under the first of the four kinds it implements, so
each kind gets an interceptor object of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc


class _WithHeaders:
    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        self._headers = tuple(headers)

    def _with_headers(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._headers)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_WithHeaders, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_headers(details), request)


class _UnaryStream(_WithHeaders, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_headers(details), request)


class _StreamUnary(_WithHeaders, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_headers(details), requests)


class _StreamStream(_WithHeaders, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self._with_headers(details), requests)


def header_interceptors(api_key: str | None, metadata: Sequence[tuple[str, str]]) -> list[Any]:
    """Interceptors adding `metadata` and `authorization: Bearer <key>` to every call."""
    headers = [*metadata, *([("authorization", f"Bearer {api_key}")] if api_key else [])]
    if not headers:
        return []
    return [kind(headers) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
