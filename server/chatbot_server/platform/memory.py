"""Giving freed memory back to the system.

glibc raises its mmap threshold each time a large block is freed, after which blocks of
that size come from its heaps, and a freed heap block stays with the process: a server that
buffered a few large uploads would keep their size for good. A fixed threshold keeps large
blocks (upload buffers, gRPC messages) in mappings of their own, returned when freed, and a
trim after a large buffer goes hands back what the heaps hold free. Elsewhere than glibc
both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024
TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024


@functools.cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc has both
    except (OSError, AttributeError):
        return None
    return libc


def fix_allocation_thresholds() -> None:
    """Keeps large blocks in their own mappings, whatever was freed before."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def return_freed_memory() -> None:
    """Hands the free memory of the allocator's heaps back to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
