"""TLS and mutual TLS on the gRPC port, with certificates the tests make: a client with a
certificate of the configured CA is identified by its subject, every other handshake is
refused, a rotated server certificate is served without a restart, and the settings
refuse plain text where asked to."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio

from chatbot.v1 import admin_service_pb2 as admin_pb
from chatbot.v1 import chat_service_pb2 as chat_pb
from chatbot.v1 import chat_service_pb2_grpc
from chatbot.v1 import document_service_pb2 as documents_pb
from chatbot_client import ChatbotClient
from chatbot_client.errors import ChatbotError
from chatbot_server.config import Settings, SettingsError
from tests.certificates import Authority, Issued
from tests.commands import chatbot, grpcurl, in_node_example
from tests.databases import MigratedDatabase, create_test_database, free_port
from tests.edge_support import CONNECT_HEADERS, running_edge
from tests.governance_support import new_key, with_key
from tests.polling import eventually
from tests.processes import ServerProcess
from tests.rpc_errors import error_info
from tests.servers import RunningServer, server_settings, start_server

ROBOT = "O=Chatbot Tests,CN=ops-robot"


@dataclass(frozen=True)
class Pki:
    folder: Path
    authority: Authority
    server: Issued
    robot: Issued
    reporter: Issued
    expired: Issued
    stranger: Issued
    stranger_authority: Authority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    authority = Authority.create(folder, "ca")
    stranger_authority = Authority.create(folder, "other-ca")
    return Pki(
        folder=folder,
        authority=authority,
        server=authority.server("server"),
        robot=authority.client("robot", "ops-robot"),
        reporter=authority.client("reporter", "reporting"),
        expired=authority.client("expired", "ops-robot", valid_days=-1),
        stranger=stranger_authority.client("stranger", "ops-robot"),
        stranger_authority=stranger_authority,
    )


@pytest_asyncio.fixture(scope="module")
async def tls_database(postgres_superuser_url: str) -> MigratedDatabase:
    return await create_test_database(postgres_superuser_url, "chatbot_tls")


@pytest_asyncio.fixture(scope="module")
async def mtls_server(
    pki: Pki, tls_database: MigratedDatabase, redis_url: str
) -> AsyncIterator[RunningServer]:
    # The server's files are copies, so that rotating them leaves the fixtures alone.
    served = pki.folder / "served"
    served.mkdir()
    cert_file, key_file = served / "server.pem", served / "server.key"
    cert_file.write_bytes(pki.server.cert_file.read_bytes())
    key_file.write_bytes(pki.server.key_file.read_bytes())
    settings = server_settings(
        tls_database.app_url,
        redis_url,
        TLS_CERT_FILE=str(cert_file),
        TLS_KEY_FILE=str(key_file),
        TLS_CLIENT_CA_FILE=str(pki.authority.cert_file),
        TLS_CLIENT_ROLES=f"{ROBOT}=admin",
        ALLOW_ANONYMOUS="false",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_BURST="1000/second",
    )
    running = await start_server(settings)
    yield running
    await running.stop()


def _client(server: RunningServer, ca: Path, issued: Issued | None) -> ChatbotClient:
    return ChatbotClient(
        server.address,
        root_certificates=ca.read_bytes(),
        certificate_chain=issued.cert_file.read_bytes() if issued else None,
        private_key=issued.key_file.read_bytes() if issued else None,
        timeout=5,
    )


async def test_a_client_certificate_stands_for_an_identity_with_its_mapped_role(
    pki: Pki, mtls_server: RunningServer
) -> None:
    async with _client(mtls_server, pki.authority.cert_file, pki.robot) as robot:
        assert await robot.health() == "SERVING"
        status = await robot.admin.GetBudgetStatus(admin_pb.GetBudgetStatusRequest(), timeout=5)
        assert status.budget.scope == "global"
        call = robot.chat.ListConversations(chat_pb.ListConversationsRequest(), timeout=5)
        headers = dict(await call.initial_metadata())
        await call
        assert headers["x-ratelimit-identity"] == f"mtls:{ROBOT}"

    # A subject without a mapping is a client; an API key over the same connection wins.
    async with _client(mtls_server, pki.authority.cert_file, pki.reporter) as reporter:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await reporter.admin.GetBudgetStatus(admin_pb.GetBudgetStatusRequest(), timeout=5)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(raised.value).metadata["role"] == "client"


async def test_an_api_key_over_mutual_tls_identifies_the_call(
    pki: Pki, mtls_server: RunningServer, tls_database: MigratedDatabase
) -> None:
    key_id, secret = await new_key(tls_database.app_url, "over-mtls", "client")
    async with _client(mtls_server, pki.authority.cert_file, pki.robot) as robot:
        call = robot.chat.ListConversations(
            chat_pb.ListConversationsRequest(), metadata=with_key(secret), timeout=5
        )
        headers = dict(await call.initial_metadata())
        await call
    assert headers["x-ratelimit-identity"] == f"key:{key_id}"


@pytest.mark.parametrize("who", ["nobody", "expired", "stranger"])
async def test_handshakes_without_a_valid_client_certificate_are_refused(
    pki: Pki, mtls_server: RunningServer, who: str
) -> None:
    issued = {"nobody": None, "expired": pki.expired, "stranger": pki.stranger}[who]
    async with _client(mtls_server, pki.authority.cert_file, issued) as client:
        with pytest.raises(ChatbotError) as raised:
            await client.health(timeout=3)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


async def test_a_client_that_does_not_trust_the_server_certificate_is_refused(
    pki: Pki, mtls_server: RunningServer
) -> None:
    async with _client(mtls_server, pki.stranger_authority.cert_file, pki.robot) as client:
        with pytest.raises(ChatbotError) as raised:
            await client.health(timeout=3)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


async def test_a_rotated_server_certificate_is_served_to_new_connections(
    pki: Pki, mtls_server: RunningServer
) -> None:
    settings = mtls_server.server.settings.tls
    assert settings.cert_file is not None and settings.key_file is not None
    successor = Authority.create(pki.folder, "successor-ca")
    rotated = successor.server("rotated")
    old = _client(mtls_server, pki.authority.cert_file, pki.robot)
    try:
        async with old:
            assert await old.health() == "SERVING"
            _replace(rotated.cert_file, settings.cert_file)
            _replace(rotated.key_file, settings.key_file)
            # An open connection goes on; new ones meet the new certificate.
            assert await old.health() == "SERVING"
        async with _client(mtls_server, successor.cert_file, pki.robot) as new:
            assert await new.health() == "SERVING"
        async with _client(mtls_server, pki.authority.cert_file, pki.robot) as stale:
            with pytest.raises(ChatbotError) as raised:
                await stale.health(timeout=3)
        assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        _replace(pki.server.cert_file, settings.cert_file)
        _replace(pki.server.key_file, settings.key_file)


async def test_the_cli_and_grpcurl_connect_with_a_client_certificate(
    pki: Pki, mtls_server: RunningServer, tls_database: MigratedDatabase, tmp_path: Path
) -> None:
    tls = ["--ca-file", str(pki.authority.cert_file)]
    code, out, err = await chatbot(
        mtls_server.address, *tls, "--cert-file", str(pki.robot.cert_file),
        "--key-file", str(pki.robot.key_file), "budget",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("Today's budget")

    # An admin key read from a file, over a connection whose certificate maps to a client.
    _, secret = await new_key(tls_database.app_url, "ops-file", "admin")
    key_file = tmp_path / "api-key"
    key_file.write_text(secret + "\n")
    code, out, err = await chatbot(
        mtls_server.address, *tls, "--cert-file", str(pki.reporter.cert_file),
        "--key-file", str(pki.reporter.key_file), "budget",
        env={"CHATBOT_API_KEY_FILE": str(key_file)},
    )  # fmt: skip
    assert code == 0, err

    code, _, err = await chatbot(mtls_server.address, *tls, "health")
    assert code == 3, err

    checked = await grpcurl(
        "-cacert", str(pki.authority.cert_file), "-cert", str(pki.robot.cert_file),
        "-key", str(pki.robot.key_file), mtls_server.address, "grpc.health.v1.Health/Check",
        plaintext=False,
    )  # fmt: skip
    assert '"status": "SERVING"' in checked


@pytest.mark.skipif(
    shutil.which("node") is None, reason="needs node and npm (apt-get install nodejs npm)"
)
async def test_the_node_example_connects_with_a_client_certificate(
    pki: Pki, mtls_server: RunningServer
) -> None:
    code, _, err = await in_node_example("npm", "ci", "--silent", "--no-audit", "--no-fund")
    assert code == 0, err
    code, _, err = await in_node_example(
        "node", "search.js", "--target", mtls_server.address,
        "--ca-file", str(pki.authority.cert_file), "--cert-file", str(pki.robot.cert_file),
        "--key-file", str(pki.robot.key_file), "status LED",
    )  # fmt: skip
    assert code == 0, err
    assert "results in" in err
    code, _, err = await in_node_example(
        "node", "search.js", "--target", mtls_server.address,
        "--ca-file", str(pki.authority.cert_file), "status LED",
    )  # fmt: skip
    assert code == 1 and "UNAVAILABLE" in err


async def test_the_edge_serves_browsers_over_https_and_calls_the_servers_over_mutual_tls(
    pki: Pki, mtls_server: RunningServer, tls_database: MigratedDatabase
) -> None:
    served = pki.folder / "edge-served"
    served.mkdir()
    cert_file, key_file = str(served / "edge.pem"), str(served / "edge.key")
    edge_certificate = pki.authority.server("edge")
    _replace(edge_certificate.cert_file, cert_file)
    _replace(edge_certificate.key_file, key_file)
    edge_client = pki.authority.client("edge-client", "chatbot-edge")
    _, secret = await new_key(tls_database.app_url, "browser", "client")
    async with running_edge(
        [mtls_server.address],
        tls_cert_file=cert_file,
        tls_key_file=key_file,
        upstream_ca_file=str(pki.authority.cert_file),
        upstream_cert_file=str(edge_client.cert_file),
        upstream_key_file=str(edge_client.key_file),
    ) as edge:
        assert edge.startswith("https://")
        # The edge's health checks reach the server over mutual TLS before it routes calls.
        listed = await eventually(lambda: _list_through(edge, pki.authority.cert_file, secret))
        assert listed.status_code == 200, listed.text
        # A call without a key is the browser's, not the edge certificate's.
        anonymous = await _list_through(edge, pki.authority.cert_file, None)
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthenticated"

        successor = Authority.create(pki.folder, "edge-successor-ca")
        renewed = successor.server("edge-renewed")
        _replace(renewed.cert_file, cert_file)
        _replace(renewed.key_file, key_file)
        listed = await eventually(
            lambda: _list_through(edge, successor.cert_file, secret), timeout=15
        )
        assert listed.status_code == 200


async def _list_through(edge: str, ca: Path, secret: str | None) -> httpx.Response | None:
    """ListDocuments over Connect through the edge, on a new connection that trusts `ca`;
    None when the handshake fails."""
    headers = {"content-type": "application/proto", **CONNECT_HEADERS}
    if secret:
        headers["authorization"] = f"Bearer {secret}"
    context = ssl.create_default_context(cafile=str(ca))
    async with httpx.AsyncClient(verify=context, timeout=5) as http:
        try:
            response = await http.post(
                edge + "/chatbot.v1.DocumentService/ListDocuments",
                content=documents_pb.ListDocumentsRequest(page_size=1).SerializeToString(),
                headers=headers,
            )
        except httpx.ConnectError:
            return None
    return response if response.status_code != 503 else None


def _replace(source: Path, target: str) -> None:
    """As Kubernetes updates a mounted secret: a new file renamed into place."""
    staged = Path(f"{target}.new")
    staged.write_bytes(source.read_bytes())
    os.replace(staged, target)


async def test_plain_text_channels_cannot_talk_to_a_tls_port(mtls_server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(mtls_server.address) as channel:
        chat = chat_service_pb2_grpc.ChatServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.ListConversations(chat_pb.ListConversationsRequest(), timeout=3)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"REQUIRE_TLS": "true"}, "REQUIRE_TLS"),
        ({"TLS_CERT_FILE": "/x.pem"}, "TLS_KEY_FILE"),
        ({"TLS_CLIENT_CA_FILE": "/ca.pem"}, "TLS_CERT_FILE"),
        (
            {"TLS_CERT_FILE": "/x.pem", "TLS_KEY_FILE": "/x.key", "TLS_CLIENT_ROLES": "CN=a=root"},
            "TLS_CLIENT_ROLES",
        ),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


async def test_production_without_tls_warns_on_a_public_address_and_refuses_when_required(
    tls_database: MigratedDatabase, pki: Pki
) -> None:
    base = {"DATABASE_URL": tls_database.app_url, "REDIS_URL": "", "ENVIRONMENT": "production"}
    public = ServerProcess({**base, "GRPC_ADDRESS": f"0.0.0.0:{free_port()}"})
    await public.start()
    try:
        warning = await public.wait_for_event("tls.off")
        assert "TLS_CERT_FILE" in str(warning["detail"])
    finally:
        await public.kill()

    required = ServerProcess({**base, "REQUIRE_TLS": "true"})
    await required.start()
    code, stderr = await required.finish(timeout=60)
    assert code == 2 and "REQUIRE_TLS=true" in stderr

    mismatched = ServerProcess(
        {
            **base,
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "TLS_CERT_FILE": str(pki.server.cert_file),
            "TLS_KEY_FILE": str(pki.robot.key_file),
        }
    )
    await mismatched.start()
    code, stderr = await mismatched.finish(timeout=60)
    assert code == 2 and "the key must be the certificate's" in stderr
