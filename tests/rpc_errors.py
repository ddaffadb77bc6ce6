"""Reading the `google.rpc.Status` a failed call carries, as a caller in any language does."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status in the trailing metadata")


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo, which this service always sends first."""
    info = error_details_pb2.ErrorInfo()
    assert rich_status(error).details[0].Unpack(info)
    return info


T = TypeVar("T", bound=Message)


def detail(error: grpc.aio.AioRpcError, kind: type[T]) -> T:
    """The one detail of this type, e.g. RetryInfo or QuotaFailure."""
    for packed in rich_status(error).details:
        found = kind()
        if packed.Unpack(found):
            return found
    raise AssertionError(f"no {kind.__name__} in the error details")
