"""A bound on the bytes that uploads in progress hold in memory, across all of them.

Uploads are buffered whole before they are stored; without a bound, a few concurrent large
uploads could take the server's memory. An upload that would pass the bound is refused at
once with RESOURCE_EXHAUSTED and a retry delay, and what it held is released.
"""

from __future__ import annotations

from types import TracebackType

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.platform.errors import ServiceError

RETRY_SECONDS = 5


class UploadMemory:
    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._held = 0

    def hold(self) -> HeldBytes:
        """What one upload holds; use as a context manager so it is released however the
        upload ends."""
        return HeldBytes(self)

    def _take(self, size: int) -> None:
        if self._held + size > self._limit:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"uploads in progress already hold {self._held:,} of the "
                f"{self._limit:,} bytes allowed (MAX_UPLOAD_MEMORY_BYTES); retry shortly",
                reason="UPLOADS_BUSY",
                details=[error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_SECONDS))],
            )
        self._held += size

    def _give_back(self, size: int) -> None:
        self._held -= size


class HeldBytes:
    def __init__(self, memory: UploadMemory) -> None:
        self._memory = memory
        self.size = 0

    def add(self, size: int) -> None:
        self._memory._take(size)
        self.size += size

    def __enter__(self) -> HeldBytes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._memory._give_back(self.size)
