"""One way to put code around every RPC handler, whatever its kind.

grpc.aio has four handler kinds (a unary or streamed request, a unary or streamed response),
and a streamed response comes from an async generator or from a coroutine that writes.
`wrap_handler` runs an async context manager around any of them, so each interceptor
states its one concern (enter: check or set up; exit: observe or map the outcome) once.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

# Makes the context manager run around one call; given the method's full name.
Around = Callable[[str, grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]
_Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


def wrap_handler(handler: grpc.RpcMethodHandler, method: str, around: Around) -> Any:
    """`handler` with its behaviour run inside `around(method, context)`."""
    kind = _handler_kind(handler)
    behaviour: _Behaviour = getattr(handler, kind)
    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(method, context):
                async for response in behaviour(request, context):
                    yield response

        return handler._replace(**{kind: streamed})

    async def awaited(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(method, context):
            return await behaviour(request, context)

    return handler._replace(**{kind: awaited})


def _handler_kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "stream_stream" if handler.response_streaming else "stream_unary"
    return "unary_stream" if handler.response_streaming else "unary_unary"


class AroundInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor made of one `around` applied to the methods `applies_to` accepts."""

    def __init__(self, around: Around, applies_to: Callable[[str], bool] = lambda _: True):
        self._around = around
        self._applies_to = applies_to

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._applies_to(method):
            return handler
        return wrap_handler(handler, method, self._around)
