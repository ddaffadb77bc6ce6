"""The server run as an operator runs it: `python -m chatbot_server COMMAND`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path


class ServerProcess:
    """`python -m chatbot_server COMMAND [ARGS]` with the given environment; stdout kept as
    events."""

    def __init__(
        self, env: dict[str, str], command: str = "serve", *, own_process_group: bool = False
    ) -> None:
        self.env = {**os.environ, **env}
        self.command = command
        # A process group of its own can be sent a terminal's Ctrl-C without the tests.
        self.own_process_group = own_process_group
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, object]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatbot_server",
            *self.command.split(),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=self.own_process_group,
        )
        self._reader = asyncio.create_task(self._read_events())

    async def _read_events(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            if line.startswith(b"{"):
                self.events.append(json.loads(line))

    async def wait_for_event(self, name: str, timeout: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("event") == name:
                    return event
            assert self.process is not None
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {name} event; got {[e.get('event') for e in self.events]}")

    async def finish(self, timeout: float) -> tuple[int, str]:
        """Waits for the process to exit; returns its exit code and stderr."""
        assert self.process is not None and self.process.stderr is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        stderr = (await self.process.stderr.read()).decode()
        if self._reader is not None:
            await self._reader
        return code, stderr

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            # A PostgreSQL the process started may still hold its stdout open.
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def run_command(command: str, env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Runs a one-shot command to its end: exit code, stderr, and the events it logged."""
    process = ServerProcess(env, command)
    await process.start()
    code, stderr = await process.finish(timeout=120)
    return code, stderr, [str(event.get("event")) for event in process.events]


async def run_process(
    *command: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> tuple[int, str, str]:
    """Runs a program to its end with no input: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *map(str, command), cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
