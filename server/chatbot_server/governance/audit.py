"""The audit trail: every admin action, through gRPC or a `chatbot-server` command, and
every refused attempt at one, written as one append-only row: when, who, what, on what,
the request id and how it ended.

Over gRPC an interceptor outside identity writes it, so that calls identity refuses are
written too: the changing methods always, AdminService's reads only when refused.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import asyncpg
import grpc
import structlog
from google.protobuf import json_format, text_format
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from chatbot_server.governance import audit_store
from chatbot_server.governance.audit_store import AuditEntry
from chatbot_server.governance.caller import current_caller
from chatbot_server.governance.interceptors import ADMIN_PREFIX, DOCUMENT_ADMIN_METHODS
from chatbot_server.platform.call_context import call_in_progress
from chatbot_server.platform.database import DATABASE_ERRORS
from chatbot_server.platform.errors import ServiceError
from chatbot_server.platform.interception import AroundInterceptor

log = structlog.get_logger(__name__)

# The methods that change something: audited whatever their outcome.
_ADMIN_CHANGES = ("CreateExperiment", "UpdateExperiment", "ClearRateLimits", "CreateApiKey",
                  "RevokeApiKey", "RotateApiKey")  # fmt: skip
CHANGING_METHODS = frozenset(
    {f"{ADMIN_PREFIX}{name}" for name in _ADMIN_CHANGES} | DOCUMENT_ADMIN_METHODS
)
REFUSALS = frozenset(
    (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
)
# Request fields that name what an action acts on, in the order they are looked for.
_TARGET_FIELDS = ("api_key_id", "document_id", "identity", "experiment", "name")
_MAX_REQUEST_JSON = 4000
_MAX_TARGET = 200

_request: ContextVar[Message | None] = ContextVar("chatbot_audited_request", default=None)


def audited(method: str) -> bool:
    return method in CHANGING_METHODS or method.startswith(ADMIN_PREFIX)


def audit_interceptor(pool: asyncpg.Pool) -> AroundInterceptor:
    return AroundInterceptor(
        lambda method, context: _AuditedCall(pool, method),
        audited,
        preparing=lambda handler: _keep_request,
    )


def _keep_request(request: Any) -> Any:
    if isinstance(request, Message):
        _request.set(request)
    return request


class _AuditedCall:
    def __init__(self, pool: asyncpg.Pool, method: str) -> None:
        self._pool = pool
        self._method = method

    async def __aenter__(self) -> None:
        _request.set(None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code, message = _ending(error)
        if self._method not in CHANGING_METHODS and code not in REFUSALS:
            return
        call = call_in_progress()
        caller = current_caller()
        actor = call.identity if call.identity != "anonymous" else f"ip:{call.client_address}"
        if caller.api_key is not None:
            name = caller.api_key.name
        else:
            name = actor.removeprefix("mtls:") if actor.startswith("mtls:") else ""
        request = _request.get()
        entry = AuditEntry(
            actor=actor,
            actor_name=name,
            action=self._method.lstrip("/"),
            target=_target(request),
            request_id=call.request_id,
            outcome=_outcome(code),
            status_code=code.name,
            request_json=_json(request),
            error_message=_storable(message),
        )
        await write(self._pool, entry)


@dataclass
class CommandAudit:
    # What the command acted on, once known (a key's id, say).
    target: str = ""


@asynccontextmanager
async def audited_command(
    pool: asyncpg.Pool, command: str, arguments: Mapping[str, object]
) -> AsyncIterator[CommandAudit]:
    """Writes the row of the `chatbot-server` command run inside, however it ends."""
    audit = CommandAudit()
    shown = json.dumps({name: str(value) for name, value in arguments.items()
                        if value is not None})  # fmt: skip
    try:
        yield audit
    except Exception as error:
        await _record_command(pool, command, audit.target, shown, error)
        raise
    await _record_command(pool, command, audit.target, shown, None)


async def _record_command(
    pool: asyncpg.Pool, command: str, target: str, arguments: str, error: Exception | None
) -> None:
    """Writes a command's row, with the operating-system user as actor."""
    user = _os_user()
    code, message = _ending(error)
    await write(
        pool,
        AuditEntry(
            actor=f"os:{user}",
            actor_name=user,
            action=f"chatbot-server {command}",
            target=target,
            request_id="",
            outcome=_outcome(code),
            status_code=code.name,
            request_json=arguments,
            error_message=message,
        ),
    )


async def write(pool: asyncpg.Pool, entry: AuditEntry) -> None:
    """Appends the row; a database that fails here is logged, the action having happened."""
    try:
        await audit_store.append(pool, entry)
    except DATABASE_ERRORS as error:
        log.error("audit.write_failed", action=entry.action, actor=entry.actor,
                  outcome=entry.outcome, error=f"{type(error).__name__}: {error}")  # fmt: skip


def _ending(error: BaseException | None) -> tuple[grpc.StatusCode, str]:
    if error is None:
        return grpc.StatusCode.OK, ""
    if isinstance(error, ServiceError):
        return error.code, error.message
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "the caller left before the action ended"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__})"


def _outcome(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.OK:
        return "ok"
    return "refused" if code in REFUSALS else "failed"


def _target(request: Message | None) -> str:
    if request is None:
        return ""
    for name in _TARGET_FIELDS:
        if name not in request.DESCRIPTOR.fields_by_name:
            continue
        value = getattr(request, name)
        if isinstance(value, Message):
            value = getattr(value, "experiment_id", "") or getattr(value, "name", "")
        if value:
            return _storable(str(value))[:_MAX_TARGET]
    return ""


def _storable(text: str) -> str:
    """Text PostgreSQL can store: a refused request may carry NUL characters."""
    return text.replace("\x00", "\ufffd")


def _json(request: Message | None) -> str:
    if request is None:
        return ""
    try:
        text = MessageToJson(request, preserving_proto_field_name=True, indent=None)
    except (ValueError, json_format.Error):
        # A value JSON cannot hold (a Duration past its range, say): the request as text.
        text = json.dumps(text_format.MessageToString(request, as_one_line=True))
    return text[:_MAX_REQUEST_JSON]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry.
        return f"uid {os.getuid()}"
