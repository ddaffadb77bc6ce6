"""Errors a caller can act on: a canonical code, a message, and `google.rpc` details (AIP-193)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

# `google.rpc.ErrorInfo.domain` of every error this service raises.
ERROR_DOMAIN = "chatbot.v1"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ServiceError(Exception):
    """Raised by handlers; the server turns it into the call's status with rich details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.details = tuple(details)

    def to_status(self) -> status_pb2.Status:
        """The `google.rpc.Status`: ErrorInfo first, then any other details."""
        error_info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
        )
        packed = []
        for detail in (error_info, *self.details):
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        return status_pb2.Status(code=_RPC_CODES[self.code], message=self.message, details=packed)


def bad_request(
    field: str, description: str, *, reason: str = "INVALID_ARGUMENT", labelled: bool = True
) -> ServiceError:
    """INVALID_ARGUMENT naming the offending field in its details, and in its message unless
    `labelled` is false (for fields a person never sees, such as an upload's `chunk`)."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field}: {description}" if labelled else description,
        reason=reason,
        details=[error_details_pb2.BadRequest(field_violations=[violation])],
    )


def embedding_unavailable(subject: str, error: Exception) -> ServiceError:
    """UNAVAILABLE for a `subject` ("the query", "the question") the embedder failed on."""
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        f"{subject} could not be embedded: {error}",
        reason="EMBEDDINGS_UNAVAILABLE",
    )


_RPC_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: code_pb2.OK,
    grpc.StatusCode.CANCELLED: code_pb2.CANCELLED,
    grpc.StatusCode.UNKNOWN: code_pb2.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: code_pb2.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
}
