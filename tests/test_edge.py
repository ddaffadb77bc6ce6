"""The Envoy edge: its generated configuration, CORS, Connect and gRPC-Web streams, the
console's files, and the client's address through trusted and untrusted peers."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from google.rpc import status_pb2

from chatbot.v1 import chat_service_pb2, document_service_pb2
from chatbot.v1.document_service_pb2_grpc import DocumentServiceStub
from chatbot_server.config import EdgeSettings
from chatbot_server.edge.envoy_config import envoy_config, parse_upstreams
from chatbot_server.edge.envoy_process import validate
from tests.databases import MigratedDatabase, free_port
from tests.edge_support import CONNECT_HEADERS, running_edge, server_stream
from tests.processes import ServerProcess, run_command
from tests.servers import RunningServer, server_settings, start_server

STREAM_ANSWER = "/chatbot.v1.ChatService/StreamAnswer"
ALLOWED_ORIGIN = "http://localhost:3000"
M = TypeVar("M", bound=Message)


@pytest_asyncio.fixture(scope="module")
async def limited_server(
    database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    """A server that counts anonymous calls per client address: 3 a minute."""
    settings = server_settings(
        database.app_url,
        redis_url,
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_ANONYMOUS="3/minute",
    )
    running = await start_server(settings)
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="module")
async def edge(limited_server: RunningServer) -> AsyncIterator[str]:
    async with running_edge([limited_server.address]) as base_url:
        yield base_url


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def some_address() -> str:
    """A documentation address of its own, so that each test's limits start empty."""
    return f"2001:db8::{random.getrandbits(16):x}:{random.getrandbits(16):x}"


@pytest.mark.parametrize(
    "settings",
    [
        EdgeSettings(),
        EdgeSettings(web_address="0.0.0.0:8443", cors_allowed_origins=(), max_stream_seconds=60),
    ],
    ids=["defaults", "all interfaces, no other origin"],
)
def test_the_generated_configuration_is_valid_for_envoy(settings: EdgeSettings) -> None:
    validate(envoy_config(settings, parse_upstreams("127.0.0.1:50051,chatbot-headless:50051")))


async def test_the_edge_command_prints_and_checks_its_configuration() -> None:
    env = {"WEB_ADDRESS": "127.0.0.1:18080", "CORS_ALLOWED_ORIGINS": "https://chat.example.com"}
    code, stderr, _ = await run_command("edge --upstream a:1,b:2 --check", env)
    assert code == 0, stderr
    code, stderr, _ = await run_command("edge --upstream nonsense --check", env)
    assert code == 2
    assert "--upstream: an upstream is host:port, got 'nonsense'" in stderr


async def test_a_preflight_from_an_allowed_origin_is_answered_and_others_are_not(
    edge: str, http: httpx.AsyncClient
) -> None:
    def preflight(origin: str) -> dict[str, str]:
        return {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization,connect-protocol-version",
        }

    allowed = await http.options(edge + STREAM_ANSWER, headers=preflight(ALLOWED_ORIGIN))
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "grpc-status-details-bin" in allowed.headers["access-control-expose-headers"]
    own = await http.options(edge + STREAM_ANSWER, headers=preflight(edge))
    assert own.headers["access-control-allow-origin"] == edge

    refused = await http.options(edge + STREAM_ANSWER, headers=preflight("http://evil.example"))
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("protocol", ["connect", "grpc-web"])
async def test_an_answer_streams_through_the_edge(
    edge: str, http: httpx.AsyncClient, protocol: str
) -> None:
    request = chat_service_pb2.StreamAnswerRequest(question="How do I mount the controller?")
    headers = {"x-request-id": "edge-test-1", "x-forwarded-for": some_address()}
    result = await server_stream(http, edge + STREAM_ANSWER, request, protocol, headers)
    assert result.status == 200
    assert result.headers["x-accel-buffering"] == "no"
    assert result.headers["x-request-id"] == "edge-test-1"
    events = [
        chat_service_pb2.StreamAnswerResponse.FromString(m).WhichOneof("event")
        for m in result.messages
    ]
    assert events[0] == "started"
    assert events[-1] == "done"
    if protocol == "connect":
        assert "error" not in json.loads(result.end)
    else:
        assert b"grpc-status:0" in result.end


@pytest.mark.parametrize("protocol", ["connect", "grpc-web"])
async def test_a_streamed_error_keeps_its_details(
    edge: str, http: httpx.AsyncClient, protocol: str
) -> None:
    request = chat_service_pb2.StreamAnswerRequest(question="")
    headers = {"x-forwarded-for": some_address()}
    result = await server_stream(http, edge + STREAM_ANSWER, request, protocol, headers)
    assert result.messages == []
    if protocol == "connect":
        end = json.loads(result.end)["error"]
        assert end["code"] == "invalid_argument"
        types = [detail["type"] for detail in end["details"]]
    else:
        trailers = dict(line.split(":", 1) for line in result.end.decode().strip().split("\r\n"))
        assert trailers["grpc-status"] == "3"
        status = status_pb2.Status.FromString(_b64(trailers["grpc-status-details-bin"]))
        types = [detail.type_url.rsplit("/", 1)[1] for detail in status.details]
    assert "google.rpc.ErrorInfo" in [t.rsplit("/", 1)[-1] for t in types]


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


async def test_a_unary_connect_call_and_its_error(edge: str, http: httpx.AsyncClient) -> None:
    headers = {
        "content-type": "application/proto",
        "x-forwarded-for": some_address(),
        **CONNECT_HEADERS,
    }
    listed = await http.post(
        edge + "/chatbot.v1.DocumentService/ListDocuments",
        content=document_service_pb2.ListDocumentsRequest(page_size=1).SerializeToString(),
        headers=headers,
    )
    assert listed.status_code == 200
    document_service_pb2.ListDocumentsResponse.FromString(listed.content)

    refused = await http.post(
        edge + "/chatbot.v1.DocumentService/GetDocument",
        content=document_service_pb2.GetDocumentRequest(document_id="nope").SerializeToString(),
        headers=headers,
    )
    assert refused.status_code == 400
    error = refused.json()
    assert error["code"] == "invalid_argument"
    assert error["message"] == "document_id: must be a UUID, got 'nope'"


async def test_the_console_is_served_from_the_same_origin(
    edge: str, http: httpx.AsyncClient
) -> None:
    page = await http.get(edge + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/console.js" in page.text
    script = await http.get(edge + "/console.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 1000


async def test_each_forwarded_client_has_limits_of_its_own(
    edge: str, http: httpx.AsyncClient
) -> None:
    first, second = some_address(), some_address()
    while second == first:
        second = some_address()

    async def list_documents(address: str) -> httpx.Response:
        return await http.post(
            edge + "/chatbot.v1.DocumentService/ListDocuments",
            content=b"",
            headers={"content-type": "application/proto", "x-forwarded-for": address,
                     **CONNECT_HEADERS},
        )  # fmt: skip

    for _ in range(3):
        allowed = await list_documents(first)
        assert allowed.status_code == 200
        assert allowed.headers["x-ratelimit-identity"] == f"ip:{first}"
    refused = await list_documents(first)
    assert refused.status_code == 429
    assert refused.json()["code"] == "resource_exhausted"
    other = await list_documents(second)
    assert other.status_code == 200
    assert other.headers["x-ratelimit-identity"] == f"ip:{second}"


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    database: MigratedDatabase, redis_url: str
) -> None:
    settings = server_settings(
        database.app_url, redis_url, RATE_LIMIT_ENABLED="true", TRUSTED_PROXIES="10.0.0.0/8"
    )
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            call = DocumentServiceStub(channel).ListDocuments(
                document_service_pb2.ListDocumentsRequest(),
                metadata=(("x-forwarded-for", "198.51.100.99"),),
            )
            await call
            headers = dict(await call.initial_metadata())
    finally:
        await running.stop()
    assert headers["x-ratelimit-identity"] == "ip:127.0.0.1"


async def test_serve_with_the_edge_starts_it_and_stops_it_with_the_server(
    database: MigratedDatabase, redis_url: str, http: httpx.AsyncClient
) -> None:
    web_address = f"127.0.0.1:{free_port()}"
    server = ServerProcess(
        {
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "WEB_ADDRESS": web_address,
            "DATABASE_URL": database.app_url,
            "REDIS_URL": redis_url,
            "SHUTDOWN_GRACE_SECONDS": "1",
        },
        "serve --edge",
    )
    await server.start()
    try:
        started = await server.wait_for_event("edge.started")
        assert started["console"] == f"http://{web_address}/"
        page = await http.get(f"http://{web_address}/")
        assert page.status_code == 200
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        code, stderr = await server.finish(timeout=30)
        assert code == 0, stderr
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://{web_address}/")
    finally:
        await server.kill()


async def test_a_whole_upload_piece_passes_the_edge(edge: str, http: httpx.AsyncClient) -> None:
    content = b"%PDF-1.4\n" + b"x" * (1024 * 1024)
    headers = {
        "content-type": "application/proto",
        "x-forwarded-for": some_address(),
        **CONNECT_HEADERS,
    }

    async def call(method: str, request: Message, response_type: type[M]) -> M:
        response = await http.post(
            f"{edge}/chatbot.v1.DocumentService/{method}",
            content=request.SerializeToString(),
            headers=headers,
        )
        assert response.status_code == 200, response.text
        return response_type.FromString(response.content)

    metadata = document_service_pb2.UploadMetadata(
        filename="big.pdf", size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest()
    )
    begun = await call(
        "BeginUpload",
        document_service_pb2.BeginUploadRequest(metadata=metadata),
        document_service_pb2.BeginUploadResponse,
    )
    piece = content[: 1024 * 1024]
    appended = await call(
        "AppendUpload",
        document_service_pb2.AppendUploadRequest(
            upload_id=begun.upload.upload_id, offset=0, data=piece
        ),
        document_service_pb2.AppendUploadResponse,
    )
    assert appended.upload.received_bytes == len(piece)
