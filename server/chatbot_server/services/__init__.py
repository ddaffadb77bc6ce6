"""The `chatbot.v1` servicers and their registration on a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import grpc

from chatbot.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    document_service_pb2,
    document_service_pb2_grpc,
)
from chatbot_server.config import Settings
from chatbot_server.governance.budget import Budget
from chatbot_server.governance.experiments import ActiveExperiment
from chatbot_server.governance.key_cache import ApiKeyCache
from chatbot_server.governance.rate_limiter import RateLimiter
from chatbot_server.retrieval.embeddings import Embedder
from chatbot_server.services.admin import AdminServicer
from chatbot_server.services.answer_runs import AnswerRuns
from chatbot_server.services.chat import ChatServicer
from chatbot_server.services.documents import DocumentServicer

CHAT_SERVICE = chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name
DOCUMENT_SERVICE = document_service_pb2.DESCRIPTOR.services_by_name["DocumentService"].full_name
ADMIN_SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
SERVICE_NAMES = (CHAT_SERVICE, DOCUMENT_SERVICE, ADMIN_SERVICE)


@dataclass(frozen=True)
class ServiceDependencies:
    """What the servicers share."""

    pool: asyncpg.Pool
    embedder: Embedder
    settings: Settings
    # Called when a document was queued, so an idle worker starts at once.
    document_queued: Callable[[], None]
    # Set when the server begins to shut down; long-lived streams end on it.
    shutting_down: asyncio.Event
    answers: AnswerRuns
    budget: Budget
    rate_limiter: RateLimiter
    api_keys: ApiKeyCache
    experiments: ActiveExperiment


def add_services(server: grpc.aio.Server, dependencies: ServiceDependencies) -> None:
    """Registers the three `chatbot.v1` services."""
    chat = ChatServicer(dependencies.pool, dependencies.answers)
    admin = AdminServicer(
        dependencies.pool,
        dependencies.budget,
        dependencies.rate_limiter,
        dependencies.api_keys,
        dependencies.experiments,
    )
    documents = DocumentServicer(
        dependencies.pool,
        dependencies.embedder,
        dependencies.settings.documents,
        dependencies.settings.retrieval,
        dependencies.document_queued,
        dependencies.shutting_down,
    )
    chat_service_pb2_grpc.add_ChatServiceServicer_to_server(chat, server)
    document_service_pb2_grpc.add_DocumentServiceServicer_to_server(documents, server)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)
