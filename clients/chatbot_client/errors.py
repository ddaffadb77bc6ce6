"""One exception hierarchy for failed calls, with the `google.rpc` details already unpacked.

Every error the service raises carries a `google.rpc.Status` whose first detail is an
`ErrorInfo` (reason, domain, metadata); some add `RetryInfo`, `QuotaFailure` or `BadRequest`.
`except ChatbotError` catches them all; the subclasses follow the gRPC status code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """A request field that was refused, and why."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """A quota that was exceeded, e.g. subject "rate_limit:chat"."""

    subject: str
    description: str


class ChatbotError(grpc.RpcError):  # type: ignore[misc]
    """A call that failed: status code, message and the details the server attached."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
        quota_violations: tuple[QuotaViolation, ...] = (),
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.message = message
        # ErrorInfo.reason, e.g. "RATE_LIMITED"; stable, for programs to branch on.
        self.reason = reason
        self.domain = domain
        self.metadata: Mapping[str, str] = dict(metadata or {})
        # RetryInfo.retry_delay in seconds: wait at least this long before trying again.
        self.retry_delay = retry_delay
        self.quota_violations = quota_violations
        self.field_violations = field_violations


class CallCancelledError(ChatbotError):
    """CANCELLED: the call was cancelled, usually by the caller."""


class InvalidArgumentError(ChatbotError):
    """INVALID_ARGUMENT: the request is wrong; `field_violations` says where."""


class DeadlineExceededError(ChatbotError):
    """DEADLINE_EXCEEDED: the call's deadline passed before it finished."""


class NotFoundError(ChatbotError):
    """NOT_FOUND: the named document, conversation, experiment or key does not exist."""


class AlreadyExistsError(ChatbotError):
    """ALREADY_EXISTS: for example an experiment name already in use."""


class PermissionDeniedError(ChatbotError):
    """PERMISSION_DENIED: the key is valid but its role may not make this call."""


class ResourceExhaustedError(ChatbotError):
    """RESOURCE_EXHAUSTED: a rate limit, the daily budget, or a size limit; see `retry_delay`."""


class FailedPreconditionError(ChatbotError):
    """FAILED_PRECONDITION: the system is not in a state that allows the call."""


class AbortedError(ChatbotError):
    """ABORTED: a concurrent change got in the way; retrying may succeed."""


class UnimplementedError(ChatbotError):
    """UNIMPLEMENTED: the server does not offer this method."""


class InternalError(ChatbotError):
    """INTERNAL or UNKNOWN: the server failed; the message says what is known."""


class UnavailableError(ChatbotError):
    """UNAVAILABLE: the server or one of its dependencies cannot be reached right now."""


class UnauthenticatedError(ChatbotError):
    """UNAUTHENTICATED: no API key, or one the server does not know."""


_CLASSES: dict[grpc.StatusCode, type[ChatbotError]] = {
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
}
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_from_status(status: status_pb2.Status) -> ChatbotError:
    """The exception for a `google.rpc.Status`, e.g. the `error` of a failed answer."""
    code = _CODES_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    info = error_details_pb2.ErrorInfo()
    retry_delay: float | None = None
    quota: list[QuotaViolation] = []
    fields: list[FieldViolation] = []
    for packed in status.details:
        retry = error_details_pb2.RetryInfo()
        quota_failure = error_details_pb2.QuotaFailure()
        bad_request = error_details_pb2.BadRequest()
        if packed.Is(info.DESCRIPTOR):
            packed.Unpack(info)
        elif packed.Unpack(retry):
            retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
        elif packed.Unpack(quota_failure):
            quota += [QuotaViolation(v.subject, v.description) for v in quota_failure.violations]
        elif packed.Unpack(bad_request):
            fields += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
    return _CLASSES.get(code, ChatbotError)(
        code,
        status.message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        retry_delay=retry_delay,
        quota_violations=tuple(quota),
        field_violations=tuple(fields),
    )


def error_from_rpc(error: grpc.RpcError) -> ChatbotError:
    """The exception for a failed call, with the details from its trailing metadata."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            return error_from_status(status_pb2.Status.FromString(value))
    # No rich status: a transport failure, or a proxy in between.
    code = error.code()
    return _CLASSES.get(code, ChatbotError)(code, error.details() or "")


@contextmanager
def chatbot_errors() -> Iterator[None]:
    """Raises `ChatbotError` subclasses in place of grpc's own call errors."""
    try:
        yield
    except grpc.RpcError as error:
        if isinstance(error, ChatbotError):
            raise
        raise error_from_rpc(error) from None
