"""The Python client library and the `chatbot` command against the real server."""

from __future__ import annotations

import asyncio
import sys

from chatbot_client import ChatbotClient
from tests.servers import RunningServer


async def test_client_reports_health_of_server_and_service(server: RunningServer) -> None:
    async with ChatbotClient(server.address, timeout=5) as client:
        assert await client.health() == "SERVING"
        assert await client.health("chatbot.v1.AdminService") == "SERVING"


async def test_cli_health_prints_status_and_exits_zero(server: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from chatbot_client.cli import main; sys.exit(main())",
        "--target",
        server.address,
        "health",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "SERVING"


async def test_cli_names_the_error_for_an_unknown_service(server: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from chatbot_client.cli import main; sys.exit(main())",
        "--target",
        server.address,
        "health",
        "chatbot.v1.Nope",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "NOT_FOUND" in err.decode()
