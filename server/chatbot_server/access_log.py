"""The outermost interceptor: request ids, one access-log event per RPC, and error mapping.

Handlers raise `ServiceError`; this turns it into the call's status with `google.rpc`
details. Any other exception becomes INTERNAL with the request id, and its traceback is
logged, so a bug never leaks internals to a caller.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from chatbot_server.call_context import (
    REQUEST_ID_KEY,
    CallContext,
    request_id_from,
    set_current_call,
)
from chatbot_server.errors import STATUS_DETAILS_KEY, ServiceError

log = structlog.get_logger("chatbot_server.access")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


class AccessLogInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every handler so that it is observed, timed and its errors mapped."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        kind = _handler_kind(handler)
        behaviour: Behaviour = getattr(handler, kind)
        if handler.response_streaming and inspect.isasyncgenfunction(behaviour):
            wrapped = _wrap_generator(behaviour, method)
        else:
            wrapped = _wrap_coroutine(behaviour, method)
        return handler._replace(**{kind: wrapped})


def _handler_kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "stream_stream" if handler.response_streaming else "stream_unary"
    return "unary_stream" if handler.response_streaming else "unary_unary"


def _wrap_coroutine(behaviour: Behaviour, method: str) -> Behaviour:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _start_call(method, context)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            result = await behaviour(request, context)
            code = _code_of(context)
            return result
        except (grpc.aio.AbortError, asyncio.CancelledError) as error:
            code = _code_of_interruption(error, context)
            raise
        except Exception as error:
            service_error = _as_service_error(error, call)
            code = service_error.code
            await _abort(context, service_error, call)
        finally:
            _finish_call(call, context, code, started)

    return observed


def _wrap_generator(behaviour: Behaviour, method: str) -> Behaviour:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _start_call(method, context)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            async for response in behaviour(request, context):
                yield response
            code = _code_of(context)
        except (grpc.aio.AbortError, asyncio.CancelledError) as error:
            code = _code_of_interruption(error, context)
            raise
        except Exception as error:
            service_error = _as_service_error(error, call)
            code = service_error.code
            await _abort(context, service_error, call)
        finally:
            _finish_call(call, context, code, started)

    return observed


def _start_call(method: str, context: grpc.aio.ServicerContext) -> CallContext:
    call = CallContext(
        request_id=request_id_from(context.invocation_metadata()),
        method=method,
        peer=context.peer(),
    )
    call.response_metadata.append((REQUEST_ID_KEY, call.request_id))
    set_current_call(call)
    structlog.contextvars.bind_contextvars(request_id=call.request_id, method=method)
    return call


def _code_of_interruption(
    error: BaseException, context: grpc.aio.ServicerContext
) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return _code_of(context)


def _as_service_error(error: Exception, call: CallContext) -> ServiceError:
    if isinstance(error, ServiceError):
        return error
    log.error("rpc.unhandled_error", exc_info=error)
    return ServiceError(
        grpc.StatusCode.INTERNAL,
        f"internal error; quote request id {call.request_id} when reporting it",
        reason="INTERNAL",
    )


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError, call: CallContext) -> None:
    """Ends the call with the error's status and details; raises grpc's AbortError."""
    status = error.to_status()
    trailing = (*call.response_metadata, (STATUS_DETAILS_KEY, status.SerializeToString()))
    await context.abort(error.code, error.message, trailing)


def _code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def _finish_call(
    call: CallContext, context: grpc.aio.ServicerContext, code: grpc.StatusCode, started: float
) -> None:
    if code == grpc.StatusCode.OK:
        context.set_trailing_metadata(tuple(call.response_metadata))
    log.info(
        "rpc.finished",
        peer=call.peer,
        code=code.name,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    structlog.contextvars.unbind_contextvars("request_id", "method")
