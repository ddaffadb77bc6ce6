"""The edge in front of a test server, and the two browser protocols spoken over plain HTTP
as a browser's fetch speaks them: Connect and gRPC-Web."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from google.protobuf.message import Message

from chatbot_server.config import EdgeSettings
from chatbot_server.edge.envoy_config import envoy_config, parse_upstreams
from chatbot_server.edge.envoy_process import EdgeProcess
from tests.databases import free_port

CONNECT_HEADERS = {"connect-protocol-version": "1"}
_END_STREAM = 0x02
_TRAILERS = 0x80


@asynccontextmanager
async def running_edge(upstream_addresses: list[str], **settings: object) -> AsyncIterator[str]:
    """An edge on a free loopback port in front of `upstream_addresses`; its base URL."""
    edge_settings = EdgeSettings(web_address=f"127.0.0.1:{free_port()}", **settings)  # type: ignore[arg-type]
    config = envoy_config(edge_settings, parse_upstreams(",".join(upstream_addresses)))
    edge = await EdgeProcess.start(config, edge_settings.web_address)
    scheme = "https" if edge_settings.tls_cert_file else "http"
    try:
        yield f"{scheme}://{edge_settings.web_address}"
    finally:
        await edge.stop()


def envelope(message: Message, flags: int = 0) -> bytes:
    data = message.SerializeToString()
    return struct.pack(">BI", flags, len(data)) + data


def frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(flags, payload) of each length-prefixed frame of a streamed body."""
    at = 0
    while at < len(body):
        flags, size = struct.unpack(">BI", body[at : at + 5])
        yield flags, body[at + 5 : at + 5 + size]
        at += 5 + size


@dataclass
class StreamResult:
    status: int
    headers: httpx.Headers
    messages: list[bytes]
    # Connect: the end-of-stream JSON; gRPC-Web: the trailers block, as text.
    end: bytes


async def server_stream(
    http: httpx.AsyncClient,
    url: str,
    request: Message,
    protocol: str,
    headers: dict[str, str] | None = None,
) -> StreamResult:
    """One server-streaming call over "connect" or "grpc-web"; each message as it came."""
    if protocol == "connect":
        content_type, last = "application/connect+proto", _END_STREAM
        extra = CONNECT_HEADERS
    else:
        content_type, last = "application/grpc-web+proto", _TRAILERS
        extra = {"x-grpc-web": "1"}
    sent = {"content-type": content_type, **extra, **(headers or {})}
    async with http.stream("POST", url, content=envelope(request), headers=sent) as response:
        body = await response.aread()
    messages, end = [], b""
    for flags, payload in frames(body):
        if flags & last:
            end = payload
        else:
            messages.append(payload)
    return StreamResult(response.status_code, response.headers, messages, end)
