"""The outermost interceptor: request ids, one access-log event per RPC, and error mapping.

Handlers (and the interceptors inside this one) raise `ServiceError`; this turns it into
the call's status with `google.rpc` details. Any other exception becomes INTERNAL with the
request id, and its traceback is logged, so a bug never leaks internals to a caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
import structlog
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.config import IPNetwork
from chatbot_server.platform import metrics
from chatbot_server.platform.call_context import (
    REQUEST_ID_KEY,
    CallContext,
    request_id_from,
    set_current_call,
)
from chatbot_server.platform.database import UNREACHABLE_ERRORS
from chatbot_server.platform.errors import STATUS_DETAILS_KEY, ServiceError, bad_request
from chatbot_server.platform.forwarding import (
    FORWARDED_FOR_KEY,
    client_address,
    via_trusted_proxy,
)
from chatbot_server.platform.interception import AroundInterceptor

log = structlog.get_logger("chatbot_server.access")
_QUIET_SERVICES = ("/grpc.health.v1.", "/grpc.reflection.")


def core_message_limit(max_message_bytes: int) -> int:
    """grpc's own limit: above ours, so that a message a little too large reaches the
    interceptor and is refused with details, yet bounded, since grpc buffers a whole message
    before anyone sees it. Larger ones get grpc's plain RESOURCE_EXHAUSTED."""
    return 2 * max_message_bytes


class AccessLogInterceptor(AroundInterceptor):
    """The access log around every handler. A request body that is not the method's message,
    or is larger than `max_message_bytes`, reaches the handler as a marker and is refused
    inside the log, like any bad input, instead of grpc's bare status with no log line."""

    def __init__(self, max_message_bytes: int, trusted_proxies: Sequence[IPNetwork]) -> None:
        super().__init__(
            lambda method, context: _AccessLogged(method, context, trusted_proxies),
            preparing=_refusing_undecodable,
        )
        self.max_message_bytes = max_message_bytes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await super().intercept_service(continuation, handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return handler._replace(
            request_deserializer=_tolerant(handler.request_deserializer, self.max_message_bytes)
        )


class _Undecodable:
    """Stands for a request body that could not be parsed."""


@dataclass(frozen=True)
class _TooLarge:
    """Stands for a request body over the server's message limit."""

    size: int
    limit: int


def _tolerant(deserializer: Callable[[bytes], Any], limit: int) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if len(data) > limit:
            return _TooLarge(len(data), limit)
        try:
            return deserializer(data)
        except Exception:
            return _Undecodable()

    return deserialize


def _refusing_undecodable(handler: grpc.RpcMethodHandler) -> Callable[[Any], Any]:
    def check(request: Any) -> Any:
        if isinstance(request, _Undecodable):
            raise bad_request("request", "the body is not a valid message of this method")
        if isinstance(request, _TooLarge):
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the message is {request.size:,} bytes; this server accepts at most "
                f"{request.limit:,} (MAX_RECEIVE_MESSAGE_BYTES); send uploads in smaller pieces",
                reason="MESSAGE_TOO_LARGE",
                metadata={"size_bytes": str(request.size), "limit_bytes": str(request.limit)},
            )
        return request

    async def check_each(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield check(request)

    return check_each if handler.request_streaming else check


class _AccessLogged:
    """Around one call: sets up its context, maps its error, logs `rpc.finished`."""

    def __init__(
        self, method: str, context: grpc.aio.ServicerContext, trusted: Sequence[IPNetwork]
    ) -> None:
        self._method = method
        self._context = context
        metadata = context.invocation_metadata() or ()
        forwarded = [v for k, v in metadata if k == FORWARDED_FOR_KEY and isinstance(v, str)]
        self._call = CallContext(
            request_id=request_id_from(metadata),
            method=method,
            peer=context.peer(),
            client_address=client_address(context.peer(), forwarded, trusted),
            via_proxy=via_trusted_proxy(context.peer(), forwarded, trusted),
        )
        self._started = 0.0

    async def __aenter__(self) -> None:
        call = self._call
        call.response_metadata.append((REQUEST_ID_KEY, call.request_id))
        set_current_call(call)
        structlog.contextvars.bind_contextvars(request_id=call.request_id, method=self._method)
        metrics.RPCS_IN_FLIGHT.labels(self._method).inc()
        self._started = time.perf_counter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code = grpc.StatusCode.OK
        service_error: ServiceError | None = None
        try:
            if isinstance(error, asyncio.CancelledError | GeneratorExit) or (
                error is None and self._context.cancelled()
            ):
                # The caller left or its deadline passed, however far the handler got.
                code = _interruption(self._context)
            elif error is None or isinstance(error, grpc.aio.AbortError):
                code = _code_of(self._context)
            elif isinstance(error, Exception):
                service_error = self._as_service_error(error)
                code = service_error.code
                await self._abort(service_error)
        finally:
            self._finish(code, service_error)

    def _as_service_error(self, error: Exception) -> ServiceError:
        if isinstance(error, ServiceError):
            return error
        if isinstance(error, UNREACHABLE_ERRORS):
            log.warning("rpc.database_unavailable", error=type(error).__name__)
            return ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the database is unreachable; retry shortly",
                reason="DATABASE_UNAVAILABLE",
                details=[error_details_pb2.RetryInfo(retry_delay=Duration(seconds=1))],
            )
        log.error("rpc.unhandled_error", exc_info=error)
        return ServiceError(
            grpc.StatusCode.INTERNAL,
            f"internal error; quote request id {self._call.request_id} when reporting it",
            reason="INTERNAL",
        )

    async def _abort(self, error: ServiceError) -> None:
        """Ends the call with the error's status and details; raises grpc's AbortError."""
        status = error.to_status()
        trailing = (*self._call.response_metadata, (STATUS_DETAILS_KEY, status.SerializeToString()))
        await self._context.abort(error.code, error.message, trailing)

    def _finish(self, code: grpc.StatusCode, error: ServiceError | None) -> None:
        if code == grpc.StatusCode.OK:
            self._context.set_trailing_metadata(tuple(self._call.response_metadata))
        seconds = time.perf_counter() - self._started
        metrics.RPCS_IN_FLIGHT.labels(self._method).dec()
        metrics.RPCS.labels(self._method, code.name).inc()
        metrics.RPC_SECONDS.labels(self._method).observe(seconds)
        fields: dict[str, object] = {
            "peer": self._call.peer,
            "client": self._call.client_address,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 2),
        }
        if error is not None:
            fields.update(reason=error.reason, message=error.message)
        # Probes and tool discovery would drown the calls that matter.
        quiet = self._method.startswith(_QUIET_SERVICES) and code == grpc.StatusCode.OK
        (log.debug if quiet else log.info)("rpc.finished", **fields)
        structlog.contextvars.unbind_contextvars("request_id", "method")


def _code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def _interruption(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """What the caller of an interrupted call saw: its deadline passing, or its own cancel."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
