"""The real server on the embedded PostgreSQL in a temporary folder, for benchmarks."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chatbot_server.app import ChatbotServer, open_resources
from chatbot_server.config import Settings

# The benchmarks start Redis as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_servers import redis_url_or_own

# REDIS_URL when set, else a redis-server of the benchmark's own while the block runs.
redis_url = redis_url_or_own


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def embedded_server(**env: str) -> AsyncIterator[ChatbotServer]:
    """A started server on a free port; `server.port` is where it listens. `env` holds
    settings as environment variables."""
    data_dir = Path(tempfile.mkdtemp(prefix="chatbot-bench-"))
    settings = Settings.from_env(
        {
            "GRPC_ADDRESS": "127.0.0.1:0",
            "EMBEDDED_POSTGRES_DIR": str(data_dir),
            "EMBEDDED_POSTGRES_PORT": str(free_port()),
            **env,
        }
    )
    resources = await open_resources(settings)
    server = ChatbotServer(settings, resources)
    try:
        await server.start()
        yield server
    finally:
        await server.stop(1)
        await resources.close()
        shutil.rmtree(data_dir, ignore_errors=True)
