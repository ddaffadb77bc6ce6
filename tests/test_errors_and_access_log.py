"""What a caller sees of errors, and what an operator sees in the access log."""

from __future__ import annotations

import contextlib

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chatbot.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
)
from tests.conftest import LogSink
from tests.polling import eventually
from tests.rpc_errors import rich_status


async def test_admin_rpc_without_an_admin_key_is_denied_with_error_info(
    channel: grpc.aio.Channel,
) -> None:
    stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    try:
        await stub.GetCostReport(admin_service_pb2.GetCostReportRequest(), timeout=5)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "/chatbot.v1.AdminService/GetCostReport" in (error.details() or "")
        status = rich_status(error)
        assert status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert (info.reason, info.domain) == ("ADMIN_REQUIRED", "chatbot.v1")
        assert info.metadata["method"] == "/chatbot.v1.AdminService/GetCostReport"
        assert info.metadata["role"] == "anonymous"
    else:
        raise AssertionError("GetCostReport answered an anonymous caller")


async def test_request_id_is_echoed_and_logged_with_method_status_and_duration(
    channel: grpc.aio.Channel, log_sink: LogSink
) -> None:
    stub = chat_service_pb2_grpc.ChatServiceStub(channel)
    try:
        await stub.GetConversation(
            chat_service_pb2.GetConversationRequest(conversation_id="c"),
            metadata=(("x-request-id", "req-access-log-1"),),
            timeout=5,
        )
    except grpc.aio.AioRpcError as error:
        assert ("x-request-id", "req-access-log-1") in tuple(error.trailing_metadata() or ())
    else:
        raise AssertionError("GetConversation answered")

    async def logged() -> list[dict[str, object]]:
        return [
            event
            for event in log_sink.events("rpc.finished")
            if event.get("request_id") == "req-access-log-1"
        ]

    (event,) = await eventually(logged)
    assert event["method"] == "/chatbot.v1.ChatService/GetConversation"
    assert event["code"] == "INVALID_ARGUMENT"
    assert event["reason"] == "INVALID_ARGUMENT"
    assert "conversation_id" in str(event["message"])
    assert isinstance(event["duration_ms"], float)
    assert str(event["peer"]).startswith("ipv4:127.0.0.1:")


async def test_health_checks_stay_out_of_the_access_log_at_info(
    channel: grpc.aio.Channel, log_sink: LogSink
) -> None:
    call = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), metadata=(("x-request-id", "req-quiet-probe"),), timeout=5
    )
    await call
    stub = chat_service_pb2_grpc.ChatServiceStub(channel)
    with contextlib.suppress(grpc.aio.AioRpcError):
        await stub.GetConversation(
            chat_service_pb2.GetConversationRequest(conversation_id="c"),
            metadata=(("x-request-id", "req-after-probe"),),
            timeout=5,
        )

    async def after_probe() -> list[dict[str, object]]:
        return [
            e for e in log_sink.events("rpc.finished") if e.get("request_id") == "req-after-probe"
        ]

    await eventually(after_probe)
    probes = [
        e for e in log_sink.events("rpc.finished") if e.get("request_id") == "req-quiet-probe"
    ]
    assert probes == []


async def test_successful_call_gets_a_generated_request_id(channel: grpc.aio.Channel) -> None:
    call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    await call
    trailing = dict(await call.trailing_metadata())
    assert len(trailing["x-request-id"]) == 32
