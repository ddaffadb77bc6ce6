"""The Python client library (asyncio and blocking) against the real server."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import HealthServicer

from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient, SyncChatbotClient
from chatbot_client.errors import UnavailableError
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents, upload_the_manual
from tests.servers import RunningServer


async def test_client_reports_health_of_server_and_service(server: RunningServer) -> None:
    async with ChatbotClient(server.address, timeout=5) as client:
        assert await client.health() == "SERVING"
        assert await client.health("chatbot.v1.AdminService") == "SERVING"


def _blocking_session(address: str) -> tuple[str, pb.Document, list[str], int]:
    with SyncChatbotClient(address, timeout=30) as client:
        uploaded = client.upload_document(manual_pdf(), title="Blocking")
        statuses = [
            pb.DocumentStatus.Name(update.document.status)
            for update in client.watch_document(uploaded.document.document_id)
        ]
        listed = [d.document_id for d in client.list_documents()]
        hits = len(client.search("controller address", top_k=2, similarity_threshold=0.01).results)
        return (
            client.health(),
            client.get_document(uploaded.document.document_id),
            listed + statuses,
            hits,
        )


async def test_blocking_client_uploads_watches_lists_and_searches(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    health, document, seen, hits = await asyncio.to_thread(_blocking_session, server.address)
    assert health == "SERVING"
    assert document.status == pb.DOCUMENT_STATUS_READY
    assert seen[0] == document.document_id
    assert seen[-1] == "DOCUMENT_STATUS_READY"
    assert hits == 2


def self_signed_certificate(folder: Path) -> tuple[bytes, bytes]:
    """A certificate for localhost and its key, made by openssl as an operator would."""
    key, certificate = folder / "key.pem", folder / "certificate.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    return certificate.read_bytes(), key.read_bytes()


async def test_the_client_connects_over_tls_and_refuses_an_untrusted_certificate(
    tmp_path: Path,
) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    # A TLS-terminating server in front of the service, reduced to what the client checks.
    server = grpc.aio.server()
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, certificate)]))
    await server.start()
    try:
        async with ChatbotClient(f"localhost:{port}", root_certificates=certificate) as trusted:
            assert await trusted.health() == "SERVING"
        async with ChatbotClient(f"localhost:{port}", tls=True, timeout=5) as untrusting:
            with pytest.raises(UnavailableError):
                await untrusting.health()
    finally:
        await server.stop(None)


async def test_search_and_ask_take_the_requests_filter(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        manual = await upload_the_manual(client)
        elsewhere = common_pb2.RetrievalFilter(tags=["not-a-tag"])
        assert (await client.search("DMX input port", filter=elsewhere)).results == []
        only_the_manual = common_pb2.RetrievalFilter(document_ids=[manual.document_id])
        answer = await client.answer(
            "What does a blinking red status LED mean?", filter=only_the_manual
        )
        assert answer.citations and answer.citations[0].document_id == manual.document_id
        with pytest.raises(ValueError, match="either filter="):
            await client.search("DMX", filter=elsewhere, tags=["manual"])
