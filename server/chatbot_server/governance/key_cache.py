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
from chatbot_server.governance.api_keys import KeyMatch, secret_sha256
from chatbot_server.platform import metrics

# Unknown secrets are cached too (a client retrying a wrong key costs one read per period);
# past this many entries the cache starts again empty.
MAX_ENTRIES = 10_000


class ApiKeyCache:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, KeyMatch | None]] = {}
        self._reading: dict[str, asyncio.Future[KeyMatch | None]] = {}

    def cached(self, secret: str) -> bool:
        """Whether a lookup of this secret is answered without reading the database."""
        entry = self._entries.get(secret_sha256(secret))
        return entry is not None and entry[0] > time.monotonic()

    async def lookup(self, secret: str) -> KeyMatch | None:
        """The key this secret belongs to (revoked and expired ones included), or None."""
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

    async def _read(self, digest: str) -> KeyMatch | None:
        try:
            record = await api_key_store.use_key(self._pool, digest)
        finally:
            del self._reading[digest]
        metrics.API_KEY_READS.labels(str(record is not None).lower()).inc()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self._ttl, record)
        return record
