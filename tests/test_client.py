"""The Python client library (asyncio and blocking) against the real server."""

from __future__ import annotations

import asyncio

from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient, SyncChatbotClient
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents
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
        hits = len(client.search("DMX input port", top_k=2, similarity_threshold=0.01).results)
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
