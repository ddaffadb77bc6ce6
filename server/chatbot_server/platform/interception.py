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


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    method: str,
    around: Around,
    prepare: Callable[[Any], Any] = lambda request: request,
) -> Any:
    """`handler` with its behaviour run inside `around(method, context)`; the request (or
    the iterator of requests) passes through `prepare` inside it too."""
    kind, behaviour = handler_behaviour(handler)
    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with around(method, context):
                async for response in behaviour(prepare(request), context):
                    yield response

        return handler._replace(**{kind: streamed})

    async def awaited(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(method, context):
            return await behaviour(prepare(request), context)

    return handler._replace(**{kind: awaited})


def handler_behaviour(handler: grpc.RpcMethodHandler) -> tuple[str, _Behaviour]:
    """The handler's kind ("unary_stream", …) and the function that serves it."""
    if handler.request_streaming:
        kind = "stream_stream" if handler.response_streaming else "stream_unary"
    else:
        kind = "unary_stream" if handler.response_streaming else "unary_unary"
    return kind, getattr(handler, kind)


class AroundInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor made of one `around` applied to the methods `applies_to` accepts."""

    def __init__(
        self,
        around: Around,
        applies_to: Callable[[str], bool] = lambda _: True,
        preparing: Callable[[grpc.RpcMethodHandler], Callable[[Any], Any]] | None = None,
    ) -> None:
        self._around = around
        self._applies_to = applies_to
        # Makes, for a handler, what its requests pass through inside the `around`.
        self._preparing = preparing

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._applies_to(method):
            return handler
        if self._preparing is None:
            return wrap_handler(handler, method, self._around)
        return wrap_handler(handler, method, self._around, self._preparing(handler))
