"""Assembles the gRPC server and runs it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import grpc
import httpx
import redis.asyncio as redis
import structlog
from grpc_health.v1 import health_pb2_grpc

from chatbot_server.answers.answer_feed import (
    KEEP_SECONDS,
    AnswerFeed,
    MemoryAnswerFeed,
    RedisAnswerFeed,
)
from chatbot_server.answers.answer_leases import AnswerLeases
from chatbot_server.answers.answering import Answerer
from chatbot_server.answers.cost_log import record_embedding_usage
from chatbot_server.answers.llm import LlmClient
from chatbot_server.config import (
    DocumentSettings,
    EdgeSettings,
    EmbeddingSettings,
    ServerSettings,
    Settings,
)
from chatbot_server.documents import document_store
from chatbot_server.documents.chunking import ChunkingPolicy
from chatbot_server.documents.ingestion import IngestionWorker
from chatbot_server.edge.envoy_config import Upstream, envoy_config
from chatbot_server.edge.envoy_process import EdgeProcess
from chatbot_server.governance.alerts import BudgetAlerts
from chatbot_server.governance.audit import audit_interceptor
from chatbot_server.governance.auth_failures import AuthFailures
from chatbot_server.governance.budget import Budget
from chatbot_server.governance.experiments import ActiveExperiment
from chatbot_server.governance.interceptors import (
    budget_gate_interceptor,
    identity_interceptor,
    rate_limit_interceptor,
)
from chatbot_server.governance.key_cache import ApiKeyCache
from chatbot_server.governance.rate_limiter import (
    InProcessRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from chatbot_server.platform import metrics
from chatbot_server.platform.access_log import AccessLogInterceptor, core_message_limit
from chatbot_server.platform.database import (
    DATABASE_ERRORS,
    EmbeddedDatabase,
    PostgresProbe,
    open_pool,
    start_embedded,
)
from chatbot_server.platform.health import Dependency, DependencyMonitor, HealthService
from chatbot_server.platform.metrics import MetricsEndpoint
from chatbot_server.platform.redis_connection import FOLLOWER_CONNECTIONS, connect_redis
from chatbot_server.platform.reflection import add_reflection
from chatbot_server.platform.tls import ServerCertificates, loopback
from chatbot_server.platform.tracing import Tracing
from chatbot_server.retrieval import languages
from chatbot_server.retrieval.embeddings import (
    Embedder,
    EmbeddingUsage,
    LocalEmbeddings,
    RemoteEmbeddings,
    TimedEmbeddings,
)
from chatbot_server.services import SERVICE_NAMES, ServiceDependencies, add_services
from chatbot_server.services.answer_runs import AnswerRuns

log = structlog.get_logger(__name__)

_SERVER_OPTIONS = [
    # Without this a second server could silently share the port with a running one.
    ("grpc.so_reuseport", 0),
    # The server pings an idle connection every minute and drops it after 20 s of silence.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients may ping as often as they like, with or without calls in flight: grpc's default
    # answers a client pinging more often than every 5 minutes (10 s here before) with
    # GOAWAY too_many_pings, which breaks common client settings such as a 10 s keepalive.
    ("grpc.http2.max_ping_strikes", 0),
]


def _connection_age(settings: ServerSettings) -> list[tuple[str, int]]:
    if not settings.max_connection_age_seconds:
        return []
    return [
        ("grpc.max_connection_age_ms", round(settings.max_connection_age_seconds * 1000)),
        (
            "grpc.max_connection_age_grace_ms",
            round(settings.max_connection_age_grace_seconds * 1000),
        ),
    ]


class ListenError(OSError):
    """The gRPC address cannot be listened on."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"cannot listen on GRPC_ADDRESS {address}: it is in use (is another chatbot-server "
            "running?) or not an address of this machine"
        )


def require_free_address(address: str) -> None:
    """Fails before anything is started when the gRPC port is taken, so a second server in
    the same folder never touches the first one's database."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As a server binds: the last run's connections in TIME_WAIT do not hold the port,
        # a process listening on it does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError:
            raise ListenError(address) from None


@dataclass
class Resources:
    """The connections the server holds, opened before it serves and closed after."""

    pool: asyncpg.Pool
    # For blocking reads only: resumers following answers.
    redis_followers: redis.Redis | None
    redis: redis.Redis | None
    http: httpx.AsyncClient
    embedder: Embedder
    embedded: EmbeddedDatabase | None
    budget: Budget
    rate_limiter: RateLimiter
    postgres_probe: PostgresProbe

    async def close(self) -> None:
        await self.budget.drain()
        await self.postgres_probe.close()
        await self.pool.close()
        await self.http.aclose()
        for client in (self.redis, self.redis_followers):
            if client is not None:
                await client.aclose()
        if self.embedded is not None:
            # A cluster another server in the same folder started is left to that server.
            await self.embedded.stop_if_started_here()


async def open_resources(settings: Settings) -> Resources:
    """Connects to PostgreSQL (starting the embedded one when DATABASE_URL is unset) and Redis."""
    database = settings.database
    embedded = await start_embedded(database) if database.embedded else None
    app_url = embedded.app_url if embedded is not None else database.url
    assert app_url is not None
    pool = await open_pool(
        app_url, database.pool_min_size, database.pool_max_size, database.statement_timeout_seconds
    )
    metrics.watch_pool(pool.get_size, pool.get_idle_size, pool.get_max_size)
    redis_client = redis_followers = None
    rate_limiter: RateLimiter
    if settings.redis.url is not None:
        timeout = settings.server.dependency_timeout_seconds
        redis_client = connect_redis(settings.redis.url, timeout)
        redis_followers = connect_redis(settings.redis.url, timeout, FOLLOWER_CONNECTIONS)
        rate_limiter = RedisRateLimiter(redis_client)
    else:
        log.warning(
            "rate_limit.in_process",
            detail="REDIS_URL is unset: rate limits are counted per server process",
        )
        rate_limiter = InProcessRateLimiter()
    # httpx's default of 100 connections would queue the 101st concurrent answer.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=5.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200),
    )
    # A reservation outlives any call it covers: the model call is bounded by its total
    # timeout, the rest of an answer by much less.
    reservation_ttl = timedelta(seconds=settings.llm.total_timeout_seconds + 300)
    budget = Budget(pool, settings.budget, BudgetAlerts(http, settings.budget), reservation_ttl)
    return Resources(
        pool=pool,
        redis=redis_client,
        redis_followers=redis_followers,
        http=http,
        embedder=TimedEmbeddings(_embedder(settings.embeddings, pool, http, budget)),
        embedded=embedded,
        budget=budget,
        rate_limiter=rate_limiter,
        postgres_probe=PostgresProbe(app_url, settings.server.dependency_timeout_seconds),
    )


def _embedder(
    settings: EmbeddingSettings, pool: asyncpg.Pool, http: httpx.AsyncClient, budget: Budget
) -> Embedder:
    if settings.base_url is None:
        return LocalEmbeddings(settings.local_model, settings.threads)

    async def record(usage: EmbeddingUsage) -> None:
        await record_embedding_usage(pool, budget, usage)

    return RemoteEmbeddings(
        http,
        settings.base_url,
        settings.api_key,
        settings.model,
        record,
    )


def chunking_policy(documents: DocumentSettings, embedder: Embedder) -> ChunkingPolicy:
    return ChunkingPolicy(
        size_chars=documents.chunk_size_chars,
        overlap_chars=documents.chunk_overlap_chars,
        max_tokens=min(documents.chunk_max_tokens, embedder.max_tokens),
    )


def ingestion_worker(settings: Settings, resources: Resources) -> IngestionWorker:
    policy = chunking_policy(settings.documents, resources.embedder)
    return IngestionWorker(resources.pool, resources.embedder, settings.ingestion, policy)


def answerer(
    settings: Settings,
    resources: Resources,
    experiments: ActiveExperiment,
    leases: AnswerLeases,
) -> Answerer:
    """Answers through OpenRouter when a key is set, else offline from the retrieved text."""
    llm = None
    if settings.llm.api_key is not None:
        llm = LlmClient(resources.http, settings.llm)
    else:
        log.warning("llm.offline", detail="OPENROUTER_API_KEY is unset; answers quote documents")
    return Answerer(
        resources.pool,
        resources.embedder,
        llm,
        settings.answer,
        settings.retrieval,
        resources.budget,
        experiments,
        leases,
    )


def answer_feed(settings: Settings, resources: Resources) -> AnswerFeed:
    """Where answers' events wait for a resume: Redis, shared by every replica, or this
    process's memory without it."""
    keep = round(settings.answer.resume_seconds) + KEEP_SECONDS
    if resources.redis is not None and resources.redis_followers is not None:
        return RedisAnswerFeed(resources.redis, resources.redis_followers, keep)
    return MemoryAnswerFeed(keep)


class ChatbotServer:
    """The grpc.aio server with the chatbot services, health, reflection and ingestion."""

    def __init__(self, settings: Settings, resources: Resources) -> None:
        self.settings = settings
        self.resources = resources
        self.health = HealthService(SERVICE_NAMES)
        self.shutting_down = asyncio.Event()
        self.workers = [
            ingestion_worker(settings, resources) for _ in range(settings.ingestion.workers)
        ]
        self.api_keys = ApiKeyCache(resources.pool, settings.identity.api_key_cache_seconds)
        self.experiments = ActiveExperiment(resources.pool)
        feed = answer_feed(settings, resources)
        self.leases = AnswerLeases(
            resources.pool, feed, resources.budget, settings.answer.lease_seconds
        )
        self.answerer = answerer(settings, resources, self.experiments, self.leases)
        self.answers = AnswerRuns(
            resources.pool, self.answerer, feed, settings.answer.resume_seconds
        )
        tracing = settings.tracing
        self.tracing = (
            Tracing(tracing.exporter, tracing.service_name, tracing.otlp_endpoint)
            if tracing.exporter != "none"
            else None
        )
        interceptors = server_interceptors(settings, resources, self.api_keys)
        if self.tracing is not None:
            # Outermost, so that the access log and everything after run inside the span.
            interceptors.insert(0, self.tracing.interceptor())
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                *_SERVER_OPTIONS,
                *_connection_age(settings.server),
                (
                    "grpc.max_receive_message_length",
                    core_message_limit(settings.server.max_receive_message_bytes),
                ),
            ],
        )
        add_services(
            self.server,
            ServiceDependencies(
                pool=resources.pool,
                embedder=resources.embedder,
                settings=settings,
                document_queued=self._wake_workers,
                shutting_down=self.shutting_down,
                answers=self.answers,
                budget=resources.budget,
                rate_limiter=resources.rate_limiter,
                api_keys=self.api_keys,
                experiments=self.experiments,
            ),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        add_reflection(self.server, SERVICE_NAMES)
        self.monitor = DependencyMonitor(
            self.health,
            _dependencies(resources),
            settings.server.health_check_interval_seconds,
            settings.server.dependency_timeout_seconds,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.metrics: MetricsEndpoint | None = None

    def _wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def start(self) -> int:
        """Binds, checks the dependencies once and starts serving; returns the bound port."""
        address = self.settings.server.grpc_address
        tls = self.settings.tls
        if tls.enabled:
            credentials = ServerCertificates(tls).credentials()
            self.port = self.server.add_secure_port(address, credentials)
        else:
            if self.settings.server.environment == "production" and not loopback(address):
                log.warning(
                    "tls.off",
                    grpc_address=address,
                    detail="API keys and questions cross the network readable: set "
                    "TLS_CERT_FILE and TLS_KEY_FILE, and REQUIRE_TLS=true to refuse plain text",
                )
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise ListenError(address)
        await self.monitor.check_once()
        await self.resources.embedder.warm_up()
        await asyncio.to_thread(languages.warm_up)
        await asyncio.to_thread(languages.load_word_lists)
        if self.settings.server.metrics_address is not None:
            self.metrics = MetricsEndpoint(self.settings.server.metrics_address)
        await self.server.start()
        self._tasks.append(asyncio.create_task(self.monitor.run(), name="dependency-monitor"))
        self.leases.start()
        for number, worker in enumerate(self.workers):
            self._tasks.append(asyncio.create_task(worker.run(), name=f"ingestion-{number}"))
        await self._report_other_models()
        host = address.rsplit(":", 1)[0]
        log.info("server.started", address=f"{host}:{self.port}")
        return self.port

    async def _report_other_models(self) -> None:
        model = self.resources.embedder.model_name
        try:
            others = await document_store.documents_of_other_models(self.resources.pool, model)
        except DATABASE_ERRORS:
            return  # the dependency monitor reports the database
        if others:
            log.warning(
                "documents.need_reprocessing",
                documents=sum(others.values()),
                by_model=others,
                embedding_model=model,
                detail="vector search leaves these documents out until they are processed "
                "again: run `chatbot documents reprocess-all`",
            )

    async def stop(self, grace_seconds: float) -> None:
        """Stops taking calls, lets calls in flight finish for up to the grace period, then
        cancels the rest and waits until every answer is recorded (its ledger row settling
        its budget reservation); the caller closes the pool after."""
        drain_seconds = self.settings.server.shutdown_drain_seconds
        log.info("server.stopping", grace_seconds=grace_seconds, drain_seconds=drain_seconds)
        self.shutting_down.set()
        await self.health.shut_down()
        await asyncio.sleep(drain_seconds)
        await self.server.stop(grace_seconds)
        await self.answers.stop()
        await self.answerer.drain()
        await self.leases.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            # Flushing blocks on the collector; not on the event loop.
            await asyncio.to_thread(self.tracing.shutdown)
        log.info("server.stopped")


def server_interceptors(
    settings: Settings, resources: Resources, api_keys: ApiKeyCache
) -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: access log, audit, identity, rate limit, budget gate."""
    chain = [
        AccessLogInterceptor(
            settings.server.max_receive_message_bytes, settings.identity.trusted_proxies
        ),
        audit_interceptor(resources.pool),
        identity_interceptor(
            api_keys,
            AuthFailures(resources.rate_limiter, settings.identity.auth_failure_limit),
            settings.identity,
            dict(settings.tls.client_roles),
        ),
    ]
    if settings.rate_limits.enabled:
        chain.append(rate_limit_interceptor(resources.rate_limiter, settings.rate_limits))
    chain.append(budget_gate_interceptor(resources.budget))
    return chain


def _dependencies(resources: Resources) -> list[Dependency]:
    probe = resources.postgres_probe
    dependencies = [Dependency("postgres", probe, probe.abandon)]
    if resources.redis is not None:
        client = resources.redis
        dependencies.append(Dependency("redis", lambda: client.ping()))
    return dependencies


async def serve(settings: Settings, with_edge: bool = False) -> None:
    """Runs the server, and the edge beside it when asked, until SIGTERM or SIGINT, then
    shuts down gracefully: the server drains through the edge, which stops last."""
    require_free_address(settings.server.grpc_address)
    if with_edge:
        require_free_address(settings.edge.web_address)
    resources = await open_resources(settings)
    try:
        server = ChatbotServer(settings, resources)
        port = await server.start()
        edge = await start_edge(settings.edge, [Upstream("127.0.0.1", port)]) if with_edge else None
        try:
            await _until_signalled()
            await server.stop(settings.server.shutdown_grace_seconds)
        finally:
            if edge is not None:
                await edge.stop()
    finally:
        await resources.close()


async def start_edge(settings: EdgeSettings, upstreams: list[Upstream]) -> EdgeProcess:
    edge = await EdgeProcess.start(envoy_config(settings, upstreams), settings.web_address)
    log.info(
        "edge.started",
        web_address=settings.web_address,
        console=f"http://{settings.web_address}/",
        upstreams=[f"{upstream.host}:{upstream.port}" for upstream in upstreams],
    )
    return edge


async def run_edge(settings: EdgeSettings, upstreams: list[Upstream]) -> int:
    """Runs only the edge until signalled or until Envoy exits; Envoy's exit status."""
    require_free_address(settings.web_address)
    edge = await start_edge(settings, upstreams)
    signalled = asyncio.create_task(_until_signalled())
    exited = asyncio.create_task(edge.exited())
    await asyncio.wait((signalled, exited), return_when=asyncio.FIRST_COMPLETED)
    status = 0 if signalled.done() else exited.result()
    signalled.cancel()
    await edge.stop()
    log.info("edge.stopped", status=status)
    return status


async def run_worker(settings: Settings) -> None:
    """Runs only the ingestion worker, for a separate worker process, until signalled."""
    resources = await open_resources(settings)
    worker = ingestion_worker(settings, resources)
    address = settings.server.metrics_address
    # Queue depth, throughput and embedding latency come from the workers.
    metrics = MetricsEndpoint(address) if address is not None else None
    task = asyncio.create_task(worker.run(), name="ingestion")
    log.info("worker.started")
    try:
        await _until_signalled()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if metrics is not None:
            metrics.close()
        await resources.close()
        log.info("worker.stopped")


async def _until_signalled() -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await stop_requested.wait()
