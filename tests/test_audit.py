"""The audit trail: every admin action through gRPC or `chatbot-server` writes exactly one
row, a refused attempt writes its refusal, the rows cannot be changed by the service's own
database role, and ListAuditEvents and `chatbot audit` read them back."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import document_service_pb2 as documents_pb
from chatbot.v1.admin_service_pb2_grpc import AdminServiceStub
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from chatbot_client import ChatbotClient
from chatbot_client.errors import PermissionDeniedError
from tests.commands import chatbot
from tests.databases import MigratedDatabase, create_test_database
from tests.governance_support import new_key, with_key
from tests.servers import RunningServer, server_settings, start_server

Call = Callable[[tuple[tuple[str, str], ...]], Awaitable[Any]]


@pytest_asyncio.fixture(scope="module")
async def audit_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_audit")


@pytest_asyncio.fixture(scope="module")
async def audit_server(
    audit_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    running = await start_server(server_settings(audit_database.app_url, redis_url))
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def stubs(audit_server: RunningServer) -> AsyncIterator[tuple[AdminServiceStub, Any]]:
    async with grpc.aio.insecure_channel(audit_server.address) as channel:
        yield AdminServiceStub(channel), DocumentServiceStub(channel)


async def _rows(url: str, request_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT * FROM audit_events WHERE request_id = $1", request_id)
    finally:
        await conn.close()


async def _audited(url: str, call: Call, secret: str | None) -> asyncpg.Record:
    """Makes the call with its own request id; the one row it wrote."""
    request_id = uuid.uuid4().hex
    metadata = (("x-request-id", request_id), *(with_key(secret) if secret else ()))
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call(metadata)
    rows = await _rows(url, request_id)
    assert len(rows) == 1, rows
    return rows[0]


async def test_every_admin_action_writes_one_row_with_who_what_and_how_it_ended(
    audit_database: MigratedDatabase, stubs: tuple[AdminServiceStub, Any]
) -> None:
    admin, documents = stubs
    url = audit_database.app_url
    admin_id, admin_secret = await new_key(url, "ops", "admin")
    client_id, _ = await new_key(url, "victim", "client")

    created = await _audited(url, lambda m: admin.CreateApiKey(
        admin_pb.CreateApiKeyRequest(name="frontend", role=admin_pb.API_KEY_ROLE_CLIENT),
        metadata=m, timeout=5), admin_secret)  # fmt: skip
    assert (created["actor"], created["actor_name"]) == (f"key:{admin_id}", "ops")
    assert created["action"] == "chatbot.v1.AdminService/CreateApiKey"
    assert (created["outcome"], created["status_code"], created["target"]) == (
        "ok", "OK", "frontend",
    )  # fmt: skip
    assert json.loads(created["request_json"])["name"] == "frontend"

    actions: list[tuple[str, Call, str]] = [
        ("RotateApiKey", lambda m: admin.RotateApiKey(
            admin_pb.RotateApiKeyRequest(api_key_id=client_id), metadata=m, timeout=5), client_id),
        ("RevokeApiKey", lambda m: admin.RevokeApiKey(
            admin_pb.RevokeApiKeyRequest(api_key_id=client_id), metadata=m, timeout=5), client_id),
        ("ClearRateLimits", lambda m: admin.ClearRateLimits(
            admin_pb.ClearRateLimitsRequest(identity="ip:198.51.100.9"), metadata=m, timeout=5),
         "ip:198.51.100.9"),
        ("ReprocessAllDocuments", lambda m: documents.ReprocessAllDocuments(
            documents_pb.ReprocessAllDocumentsRequest(), metadata=m, timeout=5), ""),
    ]  # fmt: skip
    for name, call, target in actions:
        row = await _audited(url, call, admin_secret)
        assert (row["action"].rsplit("/", 1)[1], row["outcome"], row["target"]) == (
            name, "ok", target,
        ), row  # fmt: skip

    experiment = admin_pb.Experiment(
        name="audited",
        variants=[admin_pb.ExperimentVariant(name=n, weight=50) for n in ("a", "b")],
    )
    started = await _audited(url, lambda m: admin.CreateExperiment(
        admin_pb.CreateExperimentRequest(experiment=experiment), metadata=m, timeout=5),
        admin_secret)  # fmt: skip
    assert (started["target"], started["outcome"]) == ("audited", "ok")

    # A failed action is written with its status and message.
    missing = str(uuid.uuid4())
    failed = await _audited(url, lambda m: documents.DeleteDocument(
        documents_pb.DeleteDocumentRequest(document_id=missing), metadata=m, timeout=5),
        admin_secret)  # fmt: skip
    assert (failed["outcome"], failed["status_code"], failed["target"]) == (
        "failed", "NOT_FOUND", missing,
    )  # fmt: skip
    assert missing in failed["error_message"]
    stopped = await _audited(url, lambda m: admin.UpdateExperiment(
        admin_pb.UpdateExperimentRequest(
            experiment=admin_pb.Experiment(experiment_id=missing, active=False),
            update_mask=FieldMask(paths=["active"])), metadata=m, timeout=5),
        admin_secret)  # fmt: skip
    assert (stopped["outcome"], stopped["target"]) == ("failed", missing)

    # A request carrying NUL characters is written all the same.
    odd = await _audited(url, lambda m: documents.DeleteDocument(
        documents_pb.DeleteDocumentRequest(document_id="not\x00a-uuid"), metadata=m, timeout=5),
        admin_secret)  # fmt: skip
    assert (odd["outcome"], odd["status_code"], odd["target"]) == (
        "failed", "INVALID_ARGUMENT", "not\ufffda-uuid",
    )  # fmt: skip

    # Reads that are allowed are not written.
    request_id = uuid.uuid4().hex
    await admin.GetCostReport(
        admin_pb.GetCostReportRequest(),
        metadata=(("x-request-id", request_id), *with_key(admin_secret)),
        timeout=5,
    )
    assert await _rows(url, request_id) == []


async def test_refused_attempts_are_written_as_refusals(
    audit_database: MigratedDatabase, stubs: tuple[AdminServiceStub, Any]
) -> None:
    admin, _ = stubs
    url = audit_database.app_url
    client_id, client_secret = await new_key(url, "intruder", "client")

    denied = await _audited(url, lambda m: admin.RevokeApiKey(
        admin_pb.RevokeApiKeyRequest(api_key_id=client_id), metadata=m, timeout=5),
        client_secret)  # fmt: skip
    assert (denied["actor"], denied["actor_name"]) == (f"key:{client_id}", "intruder")
    assert (denied["outcome"], denied["status_code"]) == ("refused", "PERMISSION_DENIED")
    assert "admin role" in denied["error_message"]

    unknown = await _audited(url, lambda m: admin.CreateApiKey(
        admin_pb.CreateApiKeyRequest(name="x", role=admin_pb.API_KEY_ROLE_ADMIN),
        metadata=m, timeout=5), "cbk_guessed-" + uuid.uuid4().hex)  # fmt: skip
    assert (unknown["actor"], unknown["outcome"], unknown["status_code"]) == (
        "ip:127.0.0.1", "refused", "UNAUTHENTICATED",
    )  # fmt: skip

    # A refused read of AdminService is written too.
    read = await _audited(url, lambda m: admin.GetCostReport(
        admin_pb.GetCostReportRequest(), metadata=m, timeout=5), None)  # fmt: skip
    assert (read["actor"], read["action"], read["outcome"]) == (
        "ip:127.0.0.1", "chatbot.v1.AdminService/GetCostReport", "refused",
    )  # fmt: skip


async def test_the_service_role_can_append_and_read_but_never_change_the_trail(
    audit_database: MigratedDatabase,
) -> None:
    conn = await asyncpg.connect(audit_database.app_url)
    try:
        await conn.execute(
            "INSERT INTO audit_events (actor, action, outcome, status_code) "
            "VALUES ('os:test', 'probe', 'ok', 'OK')"
        )
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE action = 'probe'")
        for statement in (
            "UPDATE audit_events SET outcome = 'failed' WHERE action = 'probe'",
            "DELETE FROM audit_events WHERE action = 'probe'",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_commands_are_written_with_the_operating_system_user(
    audit_database: MigratedDatabase,
) -> None:
    env = {**os.environ, "DATABASE_URL": audit_database.app_url}

    async def command(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatbot_server", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        return stdout.decode()

    created = await command("keys", "create", "--name", "by-hand", "--role", "client")
    key_id = created.split()[0]
    await command("keys", "revoke", key_id)
    await command("clear-data", "--yes", "--keep-api-keys")
    conn = await asyncpg.connect(audit_database.app_url)
    try:
        rows = await conn.fetch(
            "SELECT * FROM audit_events WHERE action LIKE 'chatbot-server %' ORDER BY occurred_at"
        )
    finally:
        await conn.close()
    user = getpass.getuser()
    assert [(row["action"], row["target"], row["outcome"]) for row in rows[-3:]] == [
        ("chatbot-server keys create", key_id, "ok"),
        ("chatbot-server keys revoke", key_id, "ok"),
        ("chatbot-server clear-data", "", "ok"),
    ]
    assert {(row["actor"], row["actor_name"]) for row in rows} == {(f"os:{user}", user)}
    assert json.loads(rows[-3]["request_json"])["name"] == "by-hand"


async def test_list_audit_events_filters_and_pages_and_the_cli_prints_them(
    audit_server: RunningServer, audit_database: MigratedDatabase
) -> None:
    _, secret = await new_key(audit_database.app_url, "auditor", "admin")
    _, refused_secret = await new_key(audit_database.app_url, "refused", "client")
    async with ChatbotClient(audit_server.address, api_key=refused_secret) as refused:
        for _ in range(3):
            with pytest.raises(PermissionDeniedError):
                await refused.clear_rate_limits()
    async with ChatbotClient(audit_server.address, api_key=secret) as client:
        everything = [event async for event in client.list_audit_events(page_size=2)]
        assert len(everything) >= 3
        times = [event.occur_time.ToDatetime() for event in everything]
        assert times == sorted(times, reverse=True)
        assert len({event.audit_event_id for event in everything}) == len(everything)
        refusals = [
            event
            async for event in client.list_audit_events(outcome=admin_pb.AUDIT_OUTCOME_REFUSED)
        ]
        assert refusals and {e.outcome for e in refusals} == {admin_pb.AUDIT_OUTCOME_REFUSED}
        mine = [event async for event in client.list_audit_events(actor=refusals[0].actor)]
        assert {event.actor for event in mine} == {refusals[0].actor}
        named = [event async for event in client.list_audit_events(action="ClearRateLimits")]
        assert len([e for e in named if e.actor_name == "refused"]) == 3

        for bad in (
            admin_pb.ListAuditEventsRequest(start_time=Timestamp(seconds=10**15)),
            admin_pb.ListAuditEventsRequest(actor="key:\x00"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.admin.ListAuditEvents(bad, timeout=5)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    code, out, err = await chatbot(
        audit_server, "--api-key", secret, "audit", "--outcome", "refused", "--limit", "2"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(" refused " in line for line in lines)
    assert "PERMISSION_DENIED" in lines[0]
