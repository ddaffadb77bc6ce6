"""A model call's failure as the caller sees it: a status code, a reason, a retry delay."""

from __future__ import annotations

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.answers.llm import LlmError
from chatbot_server.platform.errors import ServiceError

_CODES = {
    "rate_limited": (grpc.StatusCode.RESOURCE_EXHAUSTED, "LLM_RATE_LIMITED"),
    "unavailable": (grpc.StatusCode.UNAVAILABLE, "LLM_UNAVAILABLE"),
    "bad_response": (grpc.StatusCode.UNAVAILABLE, "LLM_UNAVAILABLE"),
    "timeout": (grpc.StatusCode.DEADLINE_EXCEEDED, "LLM_TIMEOUT"),
}


def model_failure(error: LlmError) -> ServiceError:
    code, reason = _CODES[error.kind]
    details = []
    if error.retry_after is not None:
        retry_seconds = int(error.retry_after) + 1
        details.append(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_seconds)))
    return ServiceError(code, str(error), reason=reason, details=details)
