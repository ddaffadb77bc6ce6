"""`grpc.health.v1` for load balancers, driven by the reachability of the dependencies.

Every registered service name (and "" for the server as a whole) is SERVING while each
dependency answers, and NOT_SERVING otherwise. On shutdown every name turns NOT_SERVING for
good and open `Watch` streams end cleanly after saying so, instead of holding the shutdown
for its whole grace period.

One more name, "liveness", is SERVING for as long as the process answers at all: a
liveness probe asks it, so that a server waiting for its database, or draining, is taken
out of rotation but not restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = structlog.get_logger(__name__)

ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
LIVENESS = "liveness"


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Check, List and Watch over a fixed set of service names."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self._statuses: dict[str, ServingStatus] = dict.fromkeys(("", *service_names), NOT_SERVING)
        self._changed = asyncio.Condition()
        self._shutting_down = False

    async def set_all(self, status: ServingStatus) -> None:
        """Sets every name's status, unless shutdown has begun."""
        if self._shutting_down:
            return
        async with self._changed:
            for service in self._statuses:
                self._statuses[service] = status
            self._changed.notify_all()

    async def shut_down(self) -> None:
        """Turns every name NOT_SERVING for good and ends the open Watch streams."""
        async with self._changed:
            self._shutting_down = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            self._changed.notify_all()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service == LIVENESS:
            return health_pb2.HealthCheckResponse(status=SERVING)
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                service: health_pb2.HealthCheckResponse(status=status)
                for service, status in self._statuses.items()
            }
        )

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last_sent: ServingStatus | None = None
        while True:
            async with self._changed:
                status = self._statuses.get(request.service, SERVICE_UNKNOWN)
                if status == last_sent and not self._shutting_down:
                    await self._changed.wait()
                    continue
                shutting_down = self._shutting_down
            if status != last_sent:
                yield health_pb2.HealthCheckResponse(status=status)
                last_sent = status
            if shutting_down:
                return


@dataclass(frozen=True)
class Dependency:
    """Something the server needs; `probe` raises when it is unreachable."""

    name: str
    probe: Callable[[], Awaitable[object]]
    # Called when a probe overran its time: drops what it holds at once, so that nothing
    # waits for a server that has stopped answering (asyncpg's cancel would).
    abandon: Callable[[], None] | None = None


class DependencyMonitor:
    """Probes the dependencies at an interval and sets the health service from the results."""

    def __init__(
        self,
        health: HealthService,
        dependencies: list[Dependency],
        interval_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._health = health
        self._dependencies = dependencies
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._reachable: dict[str, bool] = {}

    async def check_once(self) -> bool:
        """Probes every dependency once; returns whether all answered."""
        results = await asyncio.gather(*(self._probe(d) for d in self._dependencies))
        healthy = all(results)
        await self._health.set_all(SERVING if healthy else NOT_SERVING)
        return healthy

    async def run(self) -> None:
        """Probes until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)

    async def _probe(self, dependency: Dependency) -> bool:
        started = time.perf_counter()
        error: BaseException | None = None
        probe = asyncio.ensure_future(dependency.probe())
        done, _ = await asyncio.wait({probe}, timeout=self._timeout)
        if done:
            error = probe.exception()
        else:
            if dependency.abandon is not None:
                dependency.abandon()
            probe.cancel()
            probe.add_done_callback(_consume_outcome)
            error = TimeoutError(f"no answer within {self._timeout} s")
        reachable = error is None
        if self._reachable.get(dependency.name) != reachable:
            self._reachable[dependency.name] = reachable
            if reachable:
                log.info(
                    "dependency.reachable",
                    dependency=dependency.name,
                    ms=round((time.perf_counter() - started) * 1000, 2),
                )
            else:
                log.warning(
                    "dependency.unreachable",
                    dependency=dependency.name,
                    error=f"{type(error).__name__}: {error}",
                )
        return reachable


def _consume_outcome(task: asyncio.Future[object]) -> None:
    """Marks an abandoned probe's late result as seen, so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
