"""OpenTelemetry tracing, off by default: OTEL_TRACES_EXPORTER=otlp (OTLP over HTTP to
OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318) or console.

Every RPC gets a server span (opentelemetry-instrumentation-grpc); retrieval, the model call
and the ingestion stages get spans of their own; log events carry the trace and span ids.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import grpc
import structlog
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

log = structlog.get_logger(__name__)
EXPORTERS = ("none", "otlp", "console")
# Spans of the server's own stages; without a configured provider they cost next to nothing.
tracer = trace.get_tracer("chatbot_server")


class Tracing:
    """The configured tracer provider, its gRPC interceptor, and its shutdown."""

    def __init__(self, exporter: str, service_name: str, endpoint: str | None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(_exporter(exporter, endpoint)))
        # Once per process: the stage spans above use the global provider.
        trace.set_tracer_provider(self.provider)
        log.info("tracing.enabled", exporter=exporter, service_name=service_name)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )
        return interceptor

    def shutdown(self) -> None:
        """Sends the spans still buffered, then stops."""
        self.provider.force_flush()
        self.provider.shutdown()


def _exporter(name: str, endpoint: str | None) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    url = f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
    return OTLPSpanExporter(endpoint=url)


def add_trace_ids(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's trace and span ids, when tracing is on."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event
