"""The daily cost budget (UTC day, USD): levels, reservations, the gate and the alert.

Before a model call its worst-case cost is reserved against the global budget and the
calling key's own, atomically in PostgreSQL; the ledger settles it to the real cost. So
concurrent calls can never together overrun a budget, and the spent figure is exactly the
ledger's sum. The totals live in PostgreSQL rather than Redis: the settlement then shares
the ledger row's transaction, and the budget works without Redis (as under `make run`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import asyncpg
import grpc
import structlog
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.config import BudgetSettings
from chatbot_server.governance.alerts import BudgetAlerts
from chatbot_server.governance.api_keys import ApiKeyRecord
from chatbot_server.money import budget_store
from chatbot_server.money.ledger_store import GLOBAL_SCOPE
from chatbot_server.money.pricing import MICRO_USD_PER_USD, to_usd
from chatbot_server.platform import metrics
from chatbot_server.platform.errors import ServiceError

log = structlog.get_logger(__name__)

NORMAL, WARNING, BLOCKED = "normal", "warning", "blocked"
# How long the chat gate trusts a status it read; reservations are exact regardless.
GATE_CACHE_SECONDS = 1.0


def level_of(spent_micro_usd: int, budget_micro_usd: int, alert_threshold: float) -> str:
    """normal below the threshold, warning from it, blocked at or above the budget."""
    if spent_micro_usd >= budget_micro_usd:
        return BLOCKED
    if spent_micro_usd >= alert_threshold * budget_micro_usd:
        return WARNING
    return NORMAL


def utc_today() -> date:
    return datetime.now(UTC).date()


def next_utc_midnight(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class BudgetStatus:
    """A scope's spending on a day: "global", or an API key's id."""

    scope: str
    day: date
    spent_micro_usd: int
    reserved_micro_usd: int
    budget_micro_usd: int
    alert_threshold: float

    @property
    def used_fraction(self) -> float:
        if self.budget_micro_usd == 0:
            return 1.0 if self.spent_micro_usd else 0.0
        return self.spent_micro_usd / self.budget_micro_usd

    @property
    def level(self) -> str:
        return level_of(self.spent_micro_usd, self.budget_micro_usd, self.alert_threshold)

    @property
    def reset_time(self) -> datetime:
        return next_utc_midnight(self.day)

    def exceeded(self, in_flight: bool = False) -> ServiceError:
        """RESOURCE_EXHAUSTED naming this budget, with its figures and the reset time."""
        reason = "DAILY_BUDGET_EXCEEDED" if self.scope == GLOBAL_SCOPE else "KEY_BUDGET_EXCEEDED"
        whose = "the service's daily budget" if self.scope == GLOBAL_SCOPE else "this API key's"
        percent = round(self.used_fraction * 100, 2)
        reset = self.reset_time.isoformat().replace("+00:00", "Z")
        why = (
            "what is left is reserved by answers in progress"
            if in_flight and self.level != BLOCKED
            else "it is spent"
        )
        wait = max(1, int((self.reset_time - datetime.now(UTC)).total_seconds()))
        return ServiceError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{whose} of ${to_usd(self.budget_micro_usd):.2f} cannot cover this answer: {why} "
            f"(${to_usd(self.spent_micro_usd):.6f} spent, {percent} %); it resets at {reset}",
            reason=reason,
            metadata={
                "spent_usd": f"{to_usd(self.spent_micro_usd):.6f}",
                "budget_usd": f"{to_usd(self.budget_micro_usd):.6f}",
                "used_percent": f"{percent}",
                "reserved_usd": f"{to_usd(self.reserved_micro_usd):.6f}",
                "reset_time": reset,
                "scope": self.scope,
            },
            details=[
                error_details_pb2.RetryInfo(retry_delay=Duration(seconds=1 if in_flight else wait)),
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=f"budget:{self.scope}",
                            description=f"daily cost budget, {percent} % used",
                        )
                    ]
                ),
            ],
        )


class Budget:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: BudgetSettings,
        alerts: BudgetAlerts,
        reservation_ttl: timedelta,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._alerts = alerts
        self._ttl = reservation_ttl
        self._gate_cache: dict[str, tuple[float, BudgetStatus]] = {}
        self._warned_day: date | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def exhausted_action(self) -> str:
        return self._settings.exhausted_action

    @property
    def daily_micro_usd(self) -> int:
        """The global daily budget."""
        return round(self._settings.daily_usd * MICRO_USD_PER_USD)

    def budgets_for(self, key: ApiKeyRecord | None) -> dict[str, int]:
        """The scopes a call is charged against, with their daily budgets in micro-USD."""
        budgets = {GLOBAL_SCOPE: self.daily_micro_usd}
        if key is not None and key.daily_budget_micro_usd is not None:
            budgets[str(key.id)] = key.daily_budget_micro_usd
        return budgets

    async def reserve(self, key: ApiKeyRecord | None, amount_micro_usd: int) -> UUID:
        """Reserves a call's worst case; raises the ServiceError of the budget it would
        overrun."""
        reservation_id = uuid.uuid4()
        started = time.perf_counter()
        granted, totals = await budget_store.reserve(
            self._pool, reservation_id, self.budgets_for(key), amount_micro_usd, self._ttl
        )
        log.debug(
            "budget.reserved", granted=granted, ms=round((time.perf_counter() - started) * 1000, 2)
        )
        if granted:
            return reservation_id
        refusing = next(
            t
            for t in sorted(totals, key=lambda t: t.scope != GLOBAL_SCOPE)
            if t.spent_micro_usd + t.reserved_micro_usd + amount_micro_usd > t.budget_micro_usd
        )
        raise self._status(refusing.scope, refusing.spent_micro_usd, refusing.reserved_micro_usd,
                           refusing.budget_micro_usd).exceeded(in_flight=True)  # fmt: skip

    async def status(self, scope: str, budget_micro_usd: int) -> BudgetStatus:
        spent, reserved = await budget_store.totals(self._pool, utc_today(), scope)
        return self._status(scope, spent, reserved, budget_micro_usd)

    async def gate(self, key: ApiKeyRecord | None) -> ServiceError | None:
        """The refusal for a new chat call when a budget it is charged against is spent;
        reads each scope's figures at most once a second."""
        now = time.monotonic()
        for scope, budget in self.budgets_for(key).items():
            cached = self._gate_cache.get(scope)
            if cached is None or cached[0] < now or cached[1].day != utc_today():
                status = await self.status(scope, budget)
                self._gate_cache[scope] = (now + GATE_CACHE_SECONDS, status)
            else:
                status = cached[1]
            if status.level == BLOCKED:
                return status.exceeded()
        return None

    def spent(self, global_spent_micro_usd: int | None) -> None:
        """Called after each ledger row (None: none was written): from the alert threshold
        on, warns (once a day per replica) and has exactly one replica a day send the
        alert."""
        if global_spent_micro_usd is None:
            return
        status = self._status(GLOBAL_SCOPE, global_spent_micro_usd, 0, self.daily_micro_usd)
        metrics.BUDGET_USED_RATIO.set(status.used_fraction)
        if status.level == NORMAL or self._warned_day == status.day:
            return
        self._warned_day = status.day
        log.warning("budget.warning", **self._alert(status))
        task = asyncio.create_task(self._alert_once(status))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _alert_once(self, status: BudgetStatus) -> None:
        if await budget_store.claim_alert(self._pool, status.day, GLOBAL_SCOPE):
            await self._alerts.send(self._alert(status))

    def _alert(self, status: BudgetStatus) -> dict[str, object]:
        return {
            "day": status.day.isoformat(),
            "spent_usd": to_usd(status.spent_micro_usd),
            "budget_usd": to_usd(status.budget_micro_usd),
            "used_percent": round(status.used_fraction * 100, 2),
            "alert_threshold": self._settings.alert_threshold,
            "exhausted_action": self._settings.exhausted_action,
            "reset_time": status.reset_time.isoformat(),
        }

    async def drain(self) -> None:
        """Waits for alerts being sent, so a stopping server does not cut them off."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _status(self, scope: str, spent: int, reserved: int, budget: int) -> BudgetStatus:
        return BudgetStatus(
            scope=scope,
            day=utc_today(),
            spent_micro_usd=spent,
            reserved_micro_usd=reserved,
            budget_micro_usd=budget,
            alert_threshold=self._settings.alert_threshold,
        )


class CallReservation:
    """One model call's worst case, reserved in up to two steps so that the first token
    never waits for the budget: an estimate reserved while retrieval runs, topped up once
    the prompt is known if the estimate fell short. The ledger row releases every part."""

    def __init__(self, budget: Budget, key: ApiKeyRecord | None) -> None:
        self._budget = budget
        self._key = key
        self._estimate: asyncio.Future[None] | None = None
        self.ids: list[UUID] = []
        self._reserved = 0

    def start(self, estimate_micro_usd: int) -> None:
        self._estimate = asyncio.ensure_future(self._reserve(estimate_micro_usd))

    async def cover(self, worst_case_micro_usd: int) -> None:
        """Holds at least `worst_case_micro_usd`; raises the refusing budget's error."""
        if self._estimate is not None:
            await self._estimate
        if worst_case_micro_usd > self._reserved:
            await self._reserve(worst_case_micro_usd - self._reserved)

    async def finished(self) -> list[UUID]:
        """The reservations made, once none is still being made (a refusal no longer
        matters here: the call did not go ahead)."""
        if self._estimate is not None:
            await asyncio.gather(self._estimate, return_exceptions=True)
        return self.ids

    async def _reserve(self, amount_micro_usd: int) -> None:
        self.ids.append(await self._budget.reserve(self._key, amount_micro_usd))
        self._reserved += amount_micro_usd
