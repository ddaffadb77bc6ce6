"""The client's channel: TLS or plain, headers on every call, retries of idempotent calls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

from chatbot.v1 import admin_service_pb2, chat_service_pb2, document_service_pb2
from chatbot_client.auth import header_interceptors

# Reads that change nothing may be sent again when the server could not be reached.
_IDEMPOTENT_PREFIXES = ("Get", "List")
_IDEMPOTENT_METHODS = {"Search", "WatchDocument"}
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def idempotent_methods() -> list[tuple[str, str]]:
    """(service, method) of every chatbot.v1 read, from the contract itself."""
    found = [("grpc.health.v1.Health", "Check")]
    for module in (chat_service_pb2, document_service_pb2, admin_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [
                (service.full_name, method.name)
                for method in service.methods
                if method.name.startswith(_IDEMPOTENT_PREFIXES)
                or method.name in _IDEMPOTENT_METHODS
            ]
    return found


def service_config() -> str:
    """gRPC service config (JSON) retrying UNAVAILABLE on idempotent methods only."""
    names = [{"service": service, "method": method} for service, method in idempotent_methods()]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": _RETRY_POLICY}]})


def open_channel(
    target: str,
    *,
    api_key: str | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    tls: bool = False,
    root_certificates: bytes | None = None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An asyncio channel; `tls` (implied by `root_certificates` or a client certificate)
    uses the system's CAs unless `root_certificates` (PEM) is given. `certificate_chain`
    and `private_key` (PEM) are the client's certificate, for servers that require one."""
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("a client certificate needs both certificate_chain and private_key")
    all_options = [("grpc.service_config", service_config()), *options]
    interceptors = header_interceptors(api_key, metadata) or None
    if tls or root_certificates is not None or certificate_chain is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
        )
        return grpc.aio.secure_channel(
            target, credentials, options=all_options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=all_options, interceptors=interceptors)
