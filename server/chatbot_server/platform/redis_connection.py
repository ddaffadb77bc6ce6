"""The server's Redis client: a bounded pool that makes callers wait for a connection
rather than fail when many calls arrive at once, with every wait and read bounded."""

from __future__ import annotations

import redis.asyncio as redis

# Each rate-limited call holds a connection for one script run (a fraction of a
# millisecond), so a few dozen serve thousands of calls a second.
MAX_CONNECTIONS = 64
# A resumer holds a connection for as long as it follows an answer (blocking reads), so
# resumers get a pool of their own: they cannot starve the short commands of the other.
FOLLOWER_CONNECTIONS = 1024


def connect_redis(
    url: str, timeout_seconds: float, max_connections: int = MAX_CONNECTIONS
) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )
    return redis.Redis(connection_pool=pool)
