"""The real gRPC server, started in the test process."""

from __future__ import annotations

from dataclasses import dataclass, replace

from chatbot_server.app import ChatbotServer, Resources, open_resources
from chatbot_server.config import Settings


@dataclass
class RunningServer:
    address: str
    server: ChatbotServer
    resources: Resources

    async def stop(self, grace_seconds: float = 1.0) -> None:
        await self.server.stop(grace_seconds)
        await self.resources.close()


def server_settings(database_url: str, redis_url: str | None) -> Settings:
    """Settings for a server on a free loopback port that notices outages quickly."""
    return replace(
        Settings(),
        grpc_address="127.0.0.1:0",
        database_url=database_url,
        redis_url=redis_url,
        health_check_interval_seconds=0.1,
        dependency_timeout_seconds=1.0,
        shutdown_grace_seconds=2.0,
    )


async def start_server(settings: Settings) -> RunningServer:
    resources = await open_resources(settings)
    server = ChatbotServer(settings, resources)
    port = await server.start()
    return RunningServer(address=f"127.0.0.1:{port}", server=server, resources=resources)
