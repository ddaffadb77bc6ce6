"""The real gRPC server, started in the test process."""

from __future__ import annotations

from dataclasses import dataclass

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


def server_settings(database_url: str, redis_url: str | None, **env: str) -> Settings:
    """Settings for a server on a free loopback port that notices outages quickly, read
    from environment variables as the server reads them; `env` adds or overrides some.
    Rate limits are off unless `env` turns them on: the suite's many quick calls from one
    address would otherwise trip the burst limit."""
    return Settings.from_env(
        {
            "GRPC_ADDRESS": "127.0.0.1:0",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url or "",
            "HEALTH_CHECK_INTERVAL_SECONDS": "0.1",
            "DEPENDENCY_TIMEOUT_SECONDS": "1",
            "SHUTDOWN_GRACE_SECONDS": "2",
            "RATE_LIMIT_ENABLED": "false",
            # Many tests send wrong keys on purpose, all from one address.
            "AUTH_FAILURE_LIMIT": "100000/minute",
            # An answer whose caller left is cancelled at once, as the tests of cancelling
            # expect; the tests of resuming set a window.
            "ANSWER_RESUME_SECONDS": "0",
            **env,
        }
    )


async def start_server(settings: Settings) -> RunningServer:
    resources = await open_resources(settings)
    server = ChatbotServer(settings, resources)
    port = await server.start()
    return RunningServer(address=f"127.0.0.1:{port}", server=server, resources=resources)
