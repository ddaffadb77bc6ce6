"""OpenTelemetry traces sent over OTLP/HTTP to a collector on loopback, as a real one
receives them, with the trace ids in the log events."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from chatbot_client import ChatbotClient
from tests.conftest import LogSink
from tests.databases import MigratedDatabase
from tests.documents_support import truncate_documents, upload_the_manual
from tests.servers import server_settings, start_server


class Collector(ThreadingHTTPServer):
    """Accepts OTLP/HTTP exports on /v1/traces and keeps their spans."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.spans: list[Span] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ExportHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_rpcs_retrieval_and_ingestion_are_traced_and_logs_carry_the_trace_id(
    database: MigratedDatabase, redis_url: str, collector: Collector, log_sink: LogSink
) -> None:
    await truncate_documents(database.owner_url)
    running = await start_server(
        server_settings(
            database.app_url, redis_url,
            OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        )
    )  # fmt: skip
    try:
        async with ChatbotClient(running.address) as client:
            await upload_the_manual(client)
            await client.search("DMX input port")
            await client.answer("What does a blinking red status LED mean?")
    finally:
        await running.stop()  # flushes the spans still buffered

    by_name: dict[str, list[Span]] = {}
    for span in collector.spans:
        by_name.setdefault(span.name, []).append(span)
    (search,) = by_name["/chatbot.v1.DocumentService/Search"]
    (answer,) = by_name["/chatbot.v1.ChatService/StreamAnswer"]
    retrievals = by_name["retrieval"]
    assert {r.trace_id for r in retrievals} == {search.trace_id, answer.trace_id}
    search_retrieval = next(r for r in retrievals if r.trace_id == search.trace_id)
    assert search_retrieval.parent_span_id == search.span_id
    assert "retrieval.embed_query" in by_name
    (document,) = by_name["ingestion.document"]
    stages = {s.name for s in collector.spans if s.parent_span_id == document.span_id}
    assert stages == {"ingestion.extract", "ingestion.embed_and_store"}
    logged = [
        e for e in log_sink.events("rpc.finished")
        if e.get("method") == "/chatbot.v1.DocumentService/Search"
    ]  # fmt: skip
    assert logged[-1]["trace_id"] == search.trace_id.hex()
