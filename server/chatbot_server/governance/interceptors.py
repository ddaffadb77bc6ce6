"""The governance interceptors, in the order the server chains them after the access log:
identity (who calls, may they call this), rate limit (how often), budget gate (at what
cost). Each is one `around` on the generic handler wrapper; health and reflection pass
untouched."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType

import grpc
import structlog
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chatbot_server.config import IdentitySettings, RateLimitSettings, parse_rate
from chatbot_server.governance.api_keys import (
    KeyMatch,
    MalformedCredentials,
    secret_from_metadata,
)
from chatbot_server.governance.auth_failures import AuthFailures
from chatbot_server.governance.budget import Budget
from chatbot_server.governance.caller import current_caller, new_caller
from chatbot_server.governance.key_cache import ApiKeyCache
from chatbot_server.governance.rate_limit_rules import (
    CHAT_METHOD,
    Decision,
    RateLimitPolicy,
    response_headers,
)
from chatbot_server.governance.rate_limiter import LimiterUnavailable, RateLimiter
from chatbot_server.platform import metrics
from chatbot_server.platform.call_context import call_in_progress
from chatbot_server.platform.errors import ServiceError
from chatbot_server.platform.interception import AroundInterceptor
from chatbot_server.platform.tls import certificate_subject

log = structlog.get_logger(__name__)

GOVERNED_PREFIX = "/chatbot.v1."
ADMIN_PREFIX = "/chatbot.v1.AdminService/"
# Changing the document set is an administrator's job once anonymous access is off.
DOCUMENT_ADMIN_METHODS = frozenset(
    f"/chatbot.v1.DocumentService/{name}"
    for name in ("DeleteDocument", "ReprocessDocument", "ReprocessAllDocuments")
)


def governed(method: str) -> bool:
    return method.startswith(GOVERNED_PREFIX)


def admin_required(method: str, allow_anonymous: bool) -> bool:
    return method.startswith(ADMIN_PREFIX) or (
        not allow_anonymous and method in DOCUMENT_ADMIN_METHODS
    )


class _Before:
    """An `around` that only acts before the handler runs."""

    def __init__(self, action: Awaitable[None]) -> None:
        self._action = action

    async def __aenter__(self) -> None:
        await self._action

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


def _before(
    action: Callable[[str, grpc.aio.ServicerContext], Awaitable[None]],
    applies_to: Callable[[str], bool],
) -> AroundInterceptor:
    return AroundInterceptor(lambda method, context: _Before(action(method, context)), applies_to)


def identity_interceptor(
    keys: ApiKeyCache,
    failures: AuthFailures,
    settings: IdentitySettings,
    certificate_roles: Mapping[str, str],
) -> AroundInterceptor:
    """A call is identified by its API key; without one, by its client certificate's
    subject (mutual TLS), with the role TLS_CLIENT_ROLES gives it; else by its address."""

    async def identify(method: str, context: grpc.aio.ServicerContext) -> None:
        call = call_in_progress()
        caller = new_caller()
        try:
            secret = secret_from_metadata(context.invocation_metadata())
        except MalformedCredentials as error:
            raise _invalid_key(str(error)) from None
        # Through the edge, a certificate names the edge, not its caller.
        keyless_certificate = secret is None and not call.via_proxy
        subject = certificate_subject(context) if keyless_certificate else None
        if subject is not None:
            call.identity = f"mtls:{subject}"
            caller.certificate_role = certificate_roles.get(subject, "client")
        elif secret is None:
            if not settings.allow_anonymous:
                raise ServiceError(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "an API key is required: send 'authorization: Bearer <key>' or "
                    "'x-api-key: <key>'",
                    reason="API_KEY_REQUIRED",
                )
            call.identity = f"ip:{call.client_address}"
        else:
            peer = f"ip:{call.client_address}"
            if not keys.cached(secret) and (refused := await failures.refusal(peer)):
                raise _rate_limited(peer, refused)
            match = await keys.lookup(secret)
            why = _key_refusal(match)
            if why is not None:
                if refused := await failures.count(peer):
                    raise _rate_limited(peer, refused)
                raise why
            assert match is not None
            call.identity, caller.api_key = f"key:{match.key.id}", match.key
        role = caller.role
        if admin_required(method, settings.allow_anonymous) and role != "admin":
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} needs an API key with the admin role",
                reason="ADMIN_REQUIRED",
                metadata={"method": method, "role": role},
            )

    return _before(identify, governed)


def _invalid_key(why: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, why, reason="INVALID_API_KEY")


def _key_refusal(match: KeyMatch | None) -> ServiceError | None:
    """Why this key does not authenticate the call; None when it does."""
    why = "unknown" if match is None else match.refusal(datetime.now(UTC))
    if why is None:
        return None
    if match is None or why == "revoked":
        return _invalid_key("the API key is unknown or revoked")
    key = match.key
    if why == "expired":
        assert key.expires_at is not None
        return ServiceError(
            grpc.StatusCode.UNAUTHENTICATED,
            f"the API key {key.name!r} ({key.prefix}...) expired at "
            f"{_instant(key.expires_at)}; an administrator can give it a new secret and expiry "
            f"with `keys rotate {key.id} --expires-in 90d`",
            reason="API_KEY_EXPIRED",
            metadata={"api_key_id": str(key.id), "expire_time": _instant(key.expires_at)},
        )
    assert key.previous_secret_expires_at is not None
    ended = _instant(key.previous_secret_expires_at)
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED,
        f"this secret of the API key {key.name!r} was replaced by a rotation and stopped "
        f"working at {ended}; use the key's new secret ({key.prefix}...)",
        reason="API_KEY_ROTATED",
        metadata={"api_key_id": str(key.id), "expire_time": ended},
    )


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rate_limit_interceptor(limiter: RateLimiter, settings: RateLimitSettings) -> AroundInterceptor:
    policy = RateLimitPolicy.from_settings(settings)
    outage = False

    async def limit(method: str, context: grpc.aio.ServicerContext) -> None:
        nonlocal outage
        call = call_in_progress()
        caller = current_caller()
        key = caller.api_key
        override = parse_rate(key.rate_limit) if key is not None and key.rate_limit else None
        limits = policy.limits_for(method, caller.role != "anonymous", override)
        try:
            decision = await limiter.acquire(call.identity, limits)
        except LimiterUnavailable as error:
            if not outage:
                outage = True
                log.error("rate_limit.redis_unreachable", error=str(error),
                          failure_mode=settings.redis_failure)  # fmt: skip
            if settings.redis_failure == "closed":
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    "rate limits cannot be checked because Redis is unreachable; retry shortly",
                    reason="RATE_LIMITER_UNAVAILABLE",
                    details=[error_details_pb2.RetryInfo(retry_delay=Duration(seconds=1))],
                ) from None
            return
        if outage:
            outage = False
            log.info("rate_limit.redis_reachable")
        headers = response_headers(call.identity, decision)
        if not decision.allowed:
            call.response_metadata.extend(headers)
            raise _rate_limited(call.identity, decision)
        await context.send_initial_metadata(headers)

    return _before(limit, governed)


def _rate_limited(identity: str, decision: Decision) -> ServiceError:
    state = decision.tightest()
    name, rate = state.limit.name, state.limit.rate
    metrics.RATE_LIMIT_REFUSALS.labels(name).inc()
    wait = state.retry_after_seconds
    seconds = math.floor(wait)
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"rate limit '{name}' of {rate} reached for {identity}; retry in {wait:.3f} s",
        reason="RATE_LIMITED",
        metadata={
            "limit": name,
            "rate": str(rate),
            "identity": identity,
            "retry_after_seconds": f"{wait:.3f}",
        },
        details=[
            error_details_pb2.RetryInfo(
                retry_delay=Duration(seconds=seconds, nanos=round((wait - seconds) * 1e9))
            ),
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=f"{identity}:{refused.limit.name}",
                        description=f"at most {refused.limit.rate.count} calls in any "
                        f"{refused.limit.rate.seconds} s",
                    )
                    for refused in decision.states
                    if refused.retry_after_seconds > 0
                ]
            ),
        ],
    )


def budget_gate_interceptor(budget: Budget) -> AroundInterceptor:
    async def gate(method: str, context: grpc.aio.ServicerContext) -> None:
        caller = current_caller()
        refusal = await budget.gate(caller.api_key)
        if refusal is None:
            return
        if budget.exhausted_action == "offline":
            caller.budget_exhausted = refusal
            return
        raise refusal

    return _before(gate, lambda method: method == CHAT_METHOD)
