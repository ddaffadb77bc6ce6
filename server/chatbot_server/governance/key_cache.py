"""API-key lookups without a database round trip per call.

Each replica keeps what it read about a key for `API_KEY_CACHE_SECONDS` (5 s by default),
then reads it again; so a revocation reaches every replica within that time without any
message between them. Concurrent calls with a key not yet cached share one lookup.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from chatbot_server.governance import api_key_store
from chatbot_server.governance.api_keys import ApiKeyRecord, secret_sha256

# Unknown secrets are cached too (a client retrying a wrong key costs one read per period);
# past this many entries the cache starts again empty.
MAX_ENTRIES = 10_000


class ApiKeyCache:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._reading: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}

    async def lookup(self, secret: str) -> ApiKeyRecord | None:
        """The key with this secret (revoked ones included), or None when there is none."""
        digest = secret_sha256(secret)
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self._read(digest))
            self._reading[digest] = reading
        return await asyncio.shield(reading)

    def forget(self) -> None:
        """Drops everything cached: used after a key changes through this replica."""
        self._entries.clear()

    async def _read(self, digest: str) -> ApiKeyRecord | None:
        try:
            record = await api_key_store.use_key(self._pool, digest)
        finally:
            del self._reading[digest]
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self._ttl, record)
        return record
