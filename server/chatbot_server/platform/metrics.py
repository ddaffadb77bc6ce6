"""Prometheus metrics, served on METRICS_ADDRESS (`/metrics`) when it is set.

The metrics live in the process's default registry, as prometheus-client intends: one
server per process in production; tests that start several read them as deltas.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = structlog.get_logger(__name__)

# Latencies from a millisecond (a cached key lookup) to two minutes (a long answer).
_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

RPCS = Counter("chatbot_rpcs", "Finished RPCs by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "chatbot_rpc_duration_seconds", "RPC duration by method", ["method"], buckets=_SECONDS
)
RPCS_IN_FLIGHT = Gauge("chatbot_rpcs_in_flight", "RPCs (streams included) running now", ["method"])
FIRST_TOKEN_SECONDS = Histogram(
    "chatbot_answer_first_token_seconds",
    "Time from the question to the answer's first text",
    ["model"],
    buckets=_SECONDS,
)
ANSWERS = Counter("chatbot_answers", "Answers by how they ended", ["finish_reason", "grounding"])
LLM_TOKENS = Counter("chatbot_llm_tokens", "Language-model tokens by model", ["model", "kind"])
LLM_COST_USD = Counter("chatbot_llm_cost_usd", "Language-model spending in USD", ["model"])
BUDGET_USED_RATIO = Gauge(
    "chatbot_budget_used_ratio", "Today's spending as a fraction of the global daily budget"
)
API_KEY_READS = Counter(
    "chatbot_api_key_reads",
    "API-key lookups that read the database, by whether one was found",
    ["found"],
)
RATE_LIMIT_REFUSALS = Counter(
    "chatbot_rate_limit_refusals", "Calls refused by a rate limit", ["limit"]
)
INGESTION_QUEUE_DEPTH = Gauge(
    "chatbot_ingestion_queue_depth", "Documents waiting to be processed or being processed"
)
DOCUMENTS_PROCESSED = Counter("chatbot_documents_processed", "Documents processed", ["status"])
PAGES_PROCESSED = Counter("chatbot_pages_processed", "Pages of processed documents")
CHUNKS_PROCESSED = Counter("chatbot_chunks_processed", "Chunks embedded and stored")
EMBEDDING_SECONDS = Histogram(
    "chatbot_embedding_duration_seconds", "Time to embed one batch of texts", buckets=_SECONDS
)
DATABASE_CONNECTIONS = Gauge(
    "chatbot_database_connections", "Database pool connections by state", ["state"]
)


def watch_pool(
    size: Callable[[], int], idle: Callable[[], int], maximum: Callable[[], int]
) -> None:
    """Reports the pool's connections at each scrape."""
    DATABASE_CONNECTIONS.labels("open").set_function(size)
    DATABASE_CONNECTIONS.labels("idle").set_function(idle)
    DATABASE_CONNECTIONS.labels("in_use").set_function(lambda: size() - idle())
    DATABASE_CONNECTIONS.labels("max").set_function(maximum)


class MetricsListenError(OSError):
    """METRICS_ADDRESS cannot be listened on."""


class MetricsEndpoint:
    """The `/metrics` HTTP endpoint on its own thread."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._server: WSGIServer
        self._thread: threading.Thread
        try:
            self._server, self._thread = start_http_server(int(port), addr=host or "0.0.0.0")
        except OSError as error:
            raise MetricsListenError(
                f"cannot listen on METRICS_ADDRESS {address}: {error.strerror or error}"
            ) from None
        self.url = f"http://{host or '0.0.0.0'}:{self._server.server_port}/metrics"
        log.info("metrics.serving", url=self.url)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
