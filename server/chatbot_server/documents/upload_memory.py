"""A bound on the bytes that uploads in progress hold in memory, across all of them.

Uploads are buffered whole before they are stored (in one buffer, copied to PostgreSQL in
small pieces); without a bound, a few concurrent large uploads could take the server's
memory. An upload that would pass the bound is refused with RESOURCE_EXHAUSTED and a
retry delay (at once when it declared its size), and what it held is released, and given
back to the system.
"""

from __future__ import annotations

from types import TracebackType

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.platform.errors import ServiceError
from chatbot_server.platform.memory import return_freed_memory

RETRY_SECONDS = 5
# Buffers this large are given back to the system once released; small ones are reused.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


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

    def grow_to(self, size: int) -> None:
        """Holds `size` bytes in all: the upload's size so far, or as declared."""
        if size > self.size:
            self._memory._take(size - self.size)
            self.size = size

    def __enter__(self) -> HeldBytes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._memory._give_back(self.size)
        if self.size >= TRIM_AFTER_BYTES:
            return_freed_memory()


class UploadBuffer:
    """One upload's bytes in one buffer, allocated at once when its size is known (a
    buffer that grows as bytes arrive holds up to an eighth more than it is given)."""

    def __init__(self, expected_size: int) -> None:
        self._data = bytearray(expected_size)
        self.size = 0

    def append(self, piece: bytes) -> None:
        end = self.size + len(piece)
        if end <= len(self._data):
            self._data[self.size : end] = piece
        else:
            del self._data[self.size :]
            self._data += piece
        self.size = end

    def content(self) -> bytearray:
        """The bytes appended; the buffer itself, not a copy."""
        del self._data[self.size :]
        return self._data
