"""The real server on the embedded PostgreSQL in a temporary folder, for benchmarks."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from chatbot_server.app import ChatbotServer, open_resources
from chatbot_server.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def embedded_server(**overrides: Any) -> AsyncIterator[ChatbotServer]:
    """A started server on a free port; `server.port` is where it listens."""
    data_dir = Path(tempfile.mkdtemp(prefix="chatbot-bench-"))
    settings = replace(
        Settings(),
        grpc_address="127.0.0.1:0",
        embedded_postgres_dir=data_dir,
        embedded_postgres_port=free_port(),
        **overrides,
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
