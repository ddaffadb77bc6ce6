"""The programs the tests run as operators and other clients do: the `chatbot` command,
grpcurl and buf from the dev install, and the Node example."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from tests.processes import run_process
from tests.servers import RunningServer

ROOT = Path(__file__).resolve().parent.parent
NODE_EXAMPLE = ROOT / "examples" / "node"


async def chatbot(
    server: RunningServer | str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs `chatbot --target SERVER ARGS`, without CHATBOT_API_KEY unless `env` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "CHATBOT_API_KEY"}
    target = server if isinstance(server, str) else server.address
    return await run_process(
        sys.executable, "-m", "chatbot_client", "--target", target, *args,
        env={**environment, **(env or {})}, timeout=180,
    )  # fmt: skip


async def grpcurl(*args: str, plaintext: bool = True) -> str:
    """Runs grpcurl with these arguments (and -plaintext unless told otherwise)."""
    process = await asyncio.create_subprocess_exec(
        tool("grpcurl"),
        *(["-plaintext"] if plaintext else []),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


def tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert path is not None, f"{name} is not installed (pip install -e '.[dev]')"
    return path


async def in_node_example(*command: str) -> tuple[int, str, str]:
    """Runs a command in examples/node (npm, node)."""
    return await run_process(*command, cwd=NODE_EXAMPLE, timeout=300)
