"""AdminService: costs and budget, answer logs, feedback, experiments, rate limits, API keys.

Every call has passed the identity interceptor with an admin key.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatbot.v1 import admin_service_pb2 as pb
from chatbot.v1 import admin_service_pb2_grpc, chat_service_pb2
from chatbot_server.answers import chat_store
from chatbot_server.governance import api_key_store, audit_store, experiment_store
from chatbot_server.governance.api_keys import ApiKeyRecord
from chatbot_server.governance.audit_store import AuditFilter, AuditRecord
from chatbot_server.governance.budget import BLOCKED, NORMAL, WARNING, Budget, BudgetStatus
from chatbot_server.governance.experiment_store import ExperimentRecord, Variant
from chatbot_server.governance.experiments import ActiveExperiment
from chatbot_server.governance.key_cache import ApiKeyCache
from chatbot_server.governance.key_management import (
    DEFAULT_OVERLAP,
    create_key,
    revoke_key,
    rotate_key,
)
from chatbot_server.governance.rate_limiter import LimiterUnavailable, RateLimiter
from chatbot_server.money import ledger_store
from chatbot_server.money.ledger_store import GLOBAL_SCOPE, AnswerLogFilter
from chatbot_server.money.pricing import MICRO_USD_PER_USD, to_usd
from chatbot_server.platform import pagination
from chatbot_server.platform.errors import ServiceError, bad_request
from chatbot_server.platform.validation import bounded_text, parse_uuid
from chatbot_server.services.conversions import FINISH_REASONS, GROUNDINGS, timestamp

_LEVELS = {
    NORMAL: pb.BUDGET_LEVEL_NORMAL,
    WARNING: pb.BUDGET_LEVEL_WARNING,
    BLOCKED: pb.BUDGET_LEVEL_BLOCKED,
}
_ROLES = {pb.API_KEY_ROLE_CLIENT: "client", pb.API_KEY_ROLE_ADMIN: "admin"}
_ROLE_ENUMS = {name: value for value, name in _ROLES.items()}
_AUDIT_OUTCOMES = {
    pb.AUDIT_OUTCOME_OK: "ok",
    pb.AUDIT_OUTCOME_REFUSED: "refused",
    pb.AUDIT_OUTCOME_FAILED: "failed",
}
_AUDIT_OUTCOME_ENUMS = {name: value for value, name in _AUDIT_OUTCOMES.items()}
_EXPERIMENT_FIELDS = ("name", "description", "variants", "active")
RECENT_COMMENTS = 20


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """The `chatbot.v1.AdminService` servicer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        budget: Budget,
        rate_limiter: RateLimiter,
        api_keys: ApiKeyCache,
        experiments: ActiveExperiment,
    ) -> None:
        self._pool = pool
        self._budget = budget
        self._rate_limiter = rate_limiter
        self._api_keys = api_keys
        self._experiments = experiments

    # Costs and budget

    async def GetCostReport(
        self, request: pb.GetCostReportRequest, context: object
    ) -> pb.GetCostReportResponse:
        days = _days("days", request.days, 7)
        now = datetime.now(UTC)
        start = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
        total = await ledger_store.cost_totals(self._pool, start, None)
        by_day = {row["key"]: row for row in await self._totals(start, "day")}
        day_keys = [(start.date() + timedelta(days=n)).isoformat() for n in range(days)]
        return pb.GetCostReportResponse(
            start_time=timestamp(start),
            end_time=timestamp(now),
            total=_breakdown(total[0]) if total else pb.CostBreakdown(key="total"),
            by_model=[_breakdown(row) for row in await self._totals(start, "model")],
            by_method=[_breakdown(row) for row in await self._totals(start, "method")],
            by_day=[
                _breakdown(by_day[day]) if day in by_day else pb.CostBreakdown(key=day)
                for day in day_keys
            ],
            by_variant=[_breakdown(row) for row in await self._totals(start, "variant")],
            budget=_budget_proto(await self._global_status()),
        )

    async def _totals(self, start: datetime, group: str) -> list[Any]:
        return await ledger_store.cost_totals(self._pool, start, group)

    async def _global_status(self) -> BudgetStatus:
        return await self._budget.status(GLOBAL_SCOPE, self._budget.daily_micro_usd)

    async def GetBudgetStatus(
        self, request: pb.GetBudgetStatusRequest, context: object
    ) -> pb.GetBudgetStatusResponse:
        response = pb.GetBudgetStatusResponse(budget=_budget_proto(await self._global_status()))
        if request.api_key_id:
            key = await self._key(request.api_key_id)
            if key.daily_budget_micro_usd is not None:
                status = await self._budget.status(str(key.id), key.daily_budget_micro_usd)
                response.key_budget.CopyFrom(_budget_proto(status))
        return response

    # Answer logs and feedback

    async def ListAnswerLogs(
        self, request: pb.ListAnswerLogsRequest, context: object
    ) -> pb.ListAnswerLogsResponse:
        where = AnswerLogFilter(
            conversation_id=_optional_uuid("conversation_id", request.conversation_id),
            llm_model=request.llm_model or None,
            errors_only=request.errors_only,
            experiment_id=_optional_uuid("experiment_id", request.experiment_id),
            start=_time(request, "start_time"),
            end=_time(request, "end_time"),
        )
        scope = f"answer_logs:{where}"
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, scope)
        rows = await ledger_store.list_answer_logs(self._pool, where, limit + 1, after)
        page, token = pagination.split_page(
            rows, limit, scope, lambda row: (row["created_at"], row["id"])
        )
        return pb.ListAnswerLogsResponse(
            answer_logs=[_answer_log(row) for row in page], next_page_token=token
        )

    async def GetFeedbackSummary(
        self, request: pb.GetFeedbackSummaryRequest, context: object
    ) -> pb.GetFeedbackSummaryResponse:
        days = _days("days", request.days, 30)
        since = datetime.now(UTC) - timedelta(days=days)
        response = pb.GetFeedbackSummaryResponse()
        if request.experiment_id:
            experiment = await self._experiment(request.experiment_id)
            results = await self._variant_results(experiment)
            for result in results:
                response.by_variant.append(
                    _feedback(
                        result.variant,
                        result.positive_count,
                        result.negative_count,
                        result.answer_count,
                    )
                )
            response.total.CopyFrom(
                _feedback(
                    "total",
                    sum(r.positive_count for r in results),
                    sum(r.negative_count for r in results),
                    sum(r.answer_count for r in results),
                )
            )
        else:
            counts = await chat_store.feedback_counts(self._pool, since)
            response.total.CopyFrom(
                _feedback("total", counts.positive, counts.negative, counts.answers)
            )
        comments = await chat_store.recent_comments(self._pool, since, RECENT_COMMENTS)
        response.recent_comments.extend(
            chat_service_pb2.Feedback(
                feedback_id=str(c.id),
                message_id=str(c.message_id),
                rating=(
                    chat_service_pb2.FEEDBACK_RATING_POSITIVE
                    if c.rating == "positive"
                    else chat_service_pb2.FEEDBACK_RATING_NEGATIVE
                ),
                comment=c.comment,
                create_time=timestamp(c.created_at),
                update_time=timestamp(c.updated_at),
            )
            for c in comments
        )
        return response

    # Experiments

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: object
    ) -> pb.CreateExperimentResponse:
        given = request.experiment
        name = _experiment_name(given.name)
        variants = _variants(list(given.variants))
        stored = await self._saved(
            experiment_store.insert_experiment(
                self._pool, name, given.description[:2000], variants, given.active
            ),
            name,
        )
        return pb.CreateExperimentResponse(experiment=stored)

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, context: object
    ) -> pb.GetExperimentResponse:
        record = await self._experiment(request.experiment_id)
        return pb.GetExperimentResponse(experiment=_experiment_proto(record))

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: object
    ) -> pb.ListExperimentsResponse:
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, "experiments")
        records = await experiment_store.list_experiments(self._pool, limit + 1, after)
        page, token = pagination.split_page(records, limit, "experiments")
        return pb.ListExperimentsResponse(
            experiments=[_experiment_proto(r) for r in page], next_page_token=token
        )

    async def UpdateExperiment(
        self, request: pb.UpdateExperimentRequest, context: object
    ) -> pb.UpdateExperimentResponse:
        current = await self._experiment(request.experiment.experiment_id)
        paths = list(request.update_mask.paths)
        if not paths:
            raise bad_request("update_mask", f"name the fields to change: {_EXPERIMENT_FIELDS}")
        unknown = [p for p in paths if p not in _EXPERIMENT_FIELDS]
        if unknown:
            raise bad_request("update_mask", f"unknown fields {unknown}; use {_EXPERIMENT_FIELDS}")
        given = request.experiment
        changed = ExperimentRecord(
            id=current.id,
            name=_experiment_name(given.name) if "name" in paths else current.name,
            description=given.description[:2000] if "description" in paths else current.description,
            variants=_variants(list(given.variants)) if "variants" in paths else current.variants,
            active=given.active if "active" in paths else current.active,
            created_at=current.created_at,
            updated_at=current.updated_at,
        )
        stored = await self._saved(
            experiment_store.update_experiment(self._pool, changed), changed.name
        )
        return pb.UpdateExperimentResponse(experiment=stored)

    async def _saved(self, write: Awaitable[ExperimentRecord], name: str) -> pb.Experiment:
        """Runs a write of an experiment; a name or activity clash becomes the caller's error,
        and every replica's next answer (this one's at once) sees the change."""
        try:
            record = await write
        except asyncpg.UniqueViolationError as error:
            raise _conflict(error, name) from None
        self._experiments.forget()
        return _experiment_proto(record)

    async def GetExperimentResults(
        self, request: pb.GetExperimentResultsRequest, context: object
    ) -> pb.GetExperimentResultsResponse:
        experiment = await self._experiment(request.experiment_id)
        return pb.GetExperimentResultsResponse(
            experiment=_experiment_proto(experiment),
            variants=await self._variant_results(experiment),
        )

    async def _variant_results(self, experiment: ExperimentRecord) -> list[pb.VariantResults]:
        rows = {
            row["variant"]: row
            for row in await ledger_store.variant_results(self._pool, experiment.id)
        }
        results = []
        for variant in experiment.variants:
            row = rows.get(variant.name)
            if row is None:
                results.append(pb.VariantResults(variant=variant.name))
                continue
            cost = to_usd(row["cost_micro_usd"])
            rated = row["positive_count"] + row["negative_count"]
            results.append(
                pb.VariantResults(
                    variant=variant.name,
                    answer_count=row["answer_count"],
                    cost_usd=cost,
                    cost_per_answer_usd=cost / row["answer_count"],
                    p50_latency_ms=row["p50_latency_ms"],
                    p95_latency_ms=row["p95_latency_ms"],
                    error_count=row["error_count"],
                    positive_count=row["positive_count"],
                    negative_count=row["negative_count"],
                    positive_fraction=row["positive_count"] / rated if rated else 0.0,
                )
            )
        return results

    async def _experiment(self, raw_id: str) -> ExperimentRecord:
        experiment_id = parse_uuid("experiment_id", raw_id)
        record = await experiment_store.get_experiment(self._pool, experiment_id)
        if record is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"no experiment {experiment_id}",
                reason="EXPERIMENT_NOT_FOUND",
            )
        return record

    # Rate limits and keys

    async def ClearRateLimits(
        self, request: pb.ClearRateLimitsRequest, context: object
    ) -> pb.ClearRateLimitsResponse:
        try:
            cleared = await self._rate_limiter.clear(request.identity.strip() or None)
        except LimiterUnavailable as error:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                f"the rate-limit counters cannot be reached: {error}",
                reason="RATE_LIMITER_UNAVAILABLE",
            ) from None
        return pb.ClearRateLimitsResponse(cleared_count=cleared)

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: object
    ) -> pb.CreateApiKeyResponse:
        role = _ROLES.get(request.role)
        if role is None:
            raise bad_request("role", "must be API_KEY_ROLE_CLIENT or API_KEY_ROLE_ADMIN")
        record, secret = await create_key(
            self._pool,
            request.name,
            role,
            request.daily_budget_usd if request.HasField("daily_budget_usd") else None,
            request.rate_limit.strip(),
            _span(request, "expires_in"),
        )
        return pb.CreateApiKeyResponse(api_key=_key_proto(record), secret=secret)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: object
    ) -> pb.ListApiKeysResponse:
        scope = f"api_keys:{request.show_revoked}"
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, scope)
        records = await api_key_store.list_keys(self._pool, request.show_revoked, limit + 1, after)
        page, token = pagination.split_page(records, limit, scope)
        return pb.ListApiKeysResponse(api_keys=[_key_proto(r) for r in page], next_page_token=token)

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: object
    ) -> pb.RevokeApiKeyResponse:
        key_id = parse_uuid("api_key_id", request.api_key_id)
        record = await revoke_key(self._pool, str(key_id))
        self._api_keys.forget()
        return pb.RevokeApiKeyResponse(api_key=_key_proto(record))

    async def RotateApiKey(
        self, request: pb.RotateApiKeyRequest, context: object
    ) -> pb.RotateApiKeyResponse:
        key_id = parse_uuid("api_key_id", request.api_key_id)
        overlap = _span(request, "overlap")
        record, secret = await rotate_key(
            self._pool,
            str(key_id),
            DEFAULT_OVERLAP if overlap is None else overlap,
            _span(request, "expires_in"),
        )
        self._api_keys.forget()
        return pb.RotateApiKeyResponse(api_key=_key_proto(record), secret=secret)

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: object
    ) -> pb.ListAuditEventsResponse:
        where = AuditFilter(
            actor=bounded_text("actor", request.actor, 500),
            action=bounded_text("action", request.action, 200),
            outcome=_AUDIT_OUTCOMES.get(request.outcome, ""),
            start=_time(request, "start_time"),
            end=_time(request, "end_time"),
        )
        scope = f"audit_events:{where}"
        limit = pagination.page_size(request.page_size)
        after = pagination.decode_token(request.page_token, scope)
        records = await audit_store.list_events(self._pool, where, limit + 1, after)
        page, token = pagination.split_page(records, limit, scope)
        return pb.ListAuditEventsResponse(
            audit_events=[_audit_event(record) for record in page], next_page_token=token
        )

    async def _key(self, raw_id: str) -> ApiKeyRecord:
        key_id = parse_uuid("api_key_id", raw_id)
        record = await api_key_store.get_key(self._pool, key_id)
        if record is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND, f"no API key {key_id}", reason="API_KEY_NOT_FOUND"
            )
        return record


def _time(request: Any, field: str) -> datetime | None:
    """A Timestamp field as a UTC datetime; None when unset."""
    if not request.HasField(field):
        return None
    try:
        moment: datetime = getattr(request, field).ToDatetime(UTC)
    except (ValueError, OverflowError):
        raise bad_request(field, "must be a time between the years 1 and 9999") from None
    return moment


def _span(request: Any, field: str) -> timedelta | None:
    """A Duration field as a timedelta; None when unset."""
    if not request.HasField(field):
        return None
    duration = getattr(request, field)
    if duration.seconds < 0 or duration.nanos < 0:
        raise bad_request(field, "must not be negative")
    try:
        span: timedelta = duration.ToTimedelta()
    except OverflowError:
        raise bad_request(field, "is longer than any span this service takes") from None
    return span


def _days(field: str, value: int, default: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= 365:
        raise bad_request(field, "must be from 1 to 365, or 0 for the default")
    return value


def _optional_uuid(field: str, value: str) -> UUID | None:
    return parse_uuid(field, value) if value else None


def _breakdown(row: Any) -> pb.CostBreakdown:
    cost = to_usd(row["cost_micro_usd"])
    return pb.CostBreakdown(
        key=row["key"],
        request_count=row["request_count"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost_usd=cost,
        mean_latency_ms=row["mean_latency_ms"],
        error_count=row["error_count"],
        cost_per_request_usd=cost / row["request_count"] if row["request_count"] else 0.0,
    )


def _budget_proto(status: BudgetStatus) -> pb.BudgetStatus:
    reset = Timestamp()
    reset.FromDatetime(status.reset_time)
    return pb.BudgetStatus(
        day=status.day.isoformat(),
        spent_usd=to_usd(status.spent_micro_usd),
        budget_usd=to_usd(status.budget_micro_usd),
        used_fraction=status.used_fraction,
        alert_threshold=status.alert_threshold,
        level=_LEVELS[status.level],
        reset_time=reset,
        reserved_usd=to_usd(status.reserved_micro_usd),
        scope=status.scope,
    )


def _answer_log(row: Any) -> pb.AnswerLog:
    experiment = None
    if row["experiment_id"] is not None:
        experiment = chat_service_pb2.ExperimentAssignment(
            experiment_id=str(row["experiment_id"]),
            experiment_name=row["experiment_name"],
            variant=row["experiment_variant"],
        )
    return pb.AnswerLog(
        answer_log_id=str(row["id"]),
        request_id=row["request_id"],
        conversation_id=str(row["conversation_id"] or ""),
        message_id=str(row["message_id"] or ""),
        identity=row["identity"],
        question=row["question"],
        llm_model=row["llm_model"],
        embedding_model=row["embedding_model"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        total_tokens=row["total_tokens"],
        cost_usd=to_usd(row["cost_micro_usd"]),
        total_ms=row["total_ms"],
        retrieval_ms=row["retrieval_ms"],
        generation_ms=row["generation_ms"],
        first_token_ms=row["first_token_ms"],
        chunks_retrieved=row["chunks_retrieved"],
        citation_count=row["citation_count"],
        top_similarity=row["top_similarity"],
        experiment=experiment,
        finish_reason=FINISH_REASONS[row["finish_reason"]],
        grounding=GROUNDINGS[row["grounding"]],
        error_type=row["error_type"],
        error_message=row["error_message"],
        create_time=timestamp(row["created_at"]),
    )


def _feedback(key: str, positive: int, negative: int, answers: int) -> pb.FeedbackCounts:
    rated = positive + negative
    return pb.FeedbackCounts(
        key=key,
        positive_count=positive,
        negative_count=negative,
        positive_fraction=positive / rated if rated else 0.0,
        answer_count=answers,
    )


def _experiment_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise bad_request("experiment.name", "must be 1 to 100 characters")
    return name


def _variants(given: list[pb.ExperimentVariant]) -> list[Variant]:
    if len(given) < 2:
        raise bad_request("experiment.variants", "an experiment needs at least two variants")
    names = [v.name.strip() for v in given]
    if len(set(names)) != len(names) or not all(1 <= len(n) <= 100 for n in names):
        raise bad_request(
            "experiment.variants", "variant names must be 1 to 100 characters, unique"
        )
    variants = []
    for index, (name, variant) in enumerate(zip(names, given, strict=True)):
        field = f"experiment.variants[{index}]"
        if not 1 <= variant.weight <= 1000:
            raise bad_request(f"{field}.weight", "must be from 1 to 1,000")
        if not 0 <= variant.top_k <= 50:
            raise bad_request(f"{field}.top_k", "must be from 1 to 50, or 0 for the default")
        if not (math.isfinite(variant.temperature) and 0 <= variant.temperature <= 2):
            raise bad_request(f"{field}.temperature", "must be from 0 to 2 (0: the default)")
        if len(variant.llm_model) > 200 or len(variant.system_prompt) > 8000:
            raise bad_request(field, "llm_model is at most 200 characters, system_prompt 8,000")
        variants.append(
            Variant(
                name=name,
                weight=variant.weight,
                llm_model=variant.llm_model.strip(),
                top_k=variant.top_k,
                temperature=variant.temperature or None,
                system_prompt=variant.system_prompt.strip(),
            )
        )
    return variants


def _conflict(error: asyncpg.UniqueViolationError, name: str) -> ServiceError:
    if "one_active" in (error.constraint_name or ""):
        return ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "another experiment is active; stop it first (at most one runs at a time)",
            reason="EXPERIMENT_ALREADY_ACTIVE",
        )
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        f"an experiment named {name!r} exists",
        reason="EXPERIMENT_EXISTS",
    )


def _experiment_proto(record: ExperimentRecord) -> pb.Experiment:
    return pb.Experiment(
        experiment_id=str(record.id),
        name=record.name,
        description=record.description,
        variants=[
            pb.ExperimentVariant(
                name=v.name,
                weight=v.weight,
                llm_model=v.llm_model,
                top_k=v.top_k,
                temperature=v.temperature or 0.0,
                system_prompt=v.system_prompt,
            )
            for v in record.variants
        ],
        active=record.active,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )


def _audit_event(record: AuditRecord) -> pb.AuditEvent:
    entry = record.entry
    return pb.AuditEvent(
        audit_event_id=str(record.id),
        occur_time=timestamp(record.created_at),
        actor=entry.actor,
        actor_name=entry.actor_name,
        action=entry.action,
        target=entry.target,
        request_id=entry.request_id,
        outcome=_AUDIT_OUTCOME_ENUMS[entry.outcome],
        status_code=entry.status_code,
        request_json=entry.request_json,
        error_message=entry.error_message,
    )


def _key_proto(record: ApiKeyRecord) -> pb.ApiKey:
    key = pb.ApiKey(
        api_key_id=str(record.id),
        name=record.name,
        role=_ROLE_ENUMS[record.role],
        prefix=record.prefix,
        revoked=record.revoked,
        create_time=timestamp(record.created_at),
        last_use_time=timestamp(record.last_used_at),
        rate_limit=record.rate_limit,
        expire_time=timestamp(record.expires_at),
        previous_secret_expire_time=timestamp(record.previous_secret_expires_at),
    )
    if record.daily_budget_micro_usd is not None:
        key.daily_budget_usd = record.daily_budget_micro_usd / MICRO_USD_PER_USD
    return key
