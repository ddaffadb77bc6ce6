"""Settings, read once from the environment at start, in frozen sections.

Each field is declared once, with the environment variable that sets it and how that value
is checked; components take their own section (`settings.budget`, `settings.llm`, ...).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class Rate:
    """At most `count` calls in any window of `seconds`."""

    count: int
    seconds: int

    def __str__(self) -> str:
        for unit, seconds in reversed(_UNITS.items()):
            if self.seconds % seconds == 0:
                multiple = self.seconds // seconds
                return f"{self.count}/{'' if multiple == 1 else multiple}{unit}"
        return f"{self.count}/{self.seconds}second"


def parse_rate(text: str) -> Rate:
    """'100/minute', '1000/hour', '20/second', '10/day', '5/10minutes'."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"a rate is written like 100/minute or 1000/hour, got {text!r}")
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if count < 1 or multiple < 1:
        raise ValueError(f"a rate needs a count and a window of at least 1, got {text!r}")
    return Rate(count, multiple * _UNITS[unit])


def parse_duration(text: str) -> timedelta:
    """'90d', '12h', '30m', '45s', '2w'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"a duration is written like 90d, 12h, 30m or 45s, got {text!r}")
    return timedelta(seconds=int(match[1]) * _DURATION_SECONDS[match[2]])


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


Reader = Callable[[str, str], Any]


def _setting(env: str, default: Any, read: Reader, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "read": read, "secret": secret})


def text(env: str, default: str) -> Any:
    return _setting(env, default, lambda _name, raw: raw)


def optional_text(env: str) -> Any:
    return _setting(env, None, lambda _name, raw: raw)


def secret(env: str, default: str | None = None) -> Any:
    """Text that may instead come from the file `{env}_FILE` names, as Docker and Kubernetes
    mount secrets; never both."""
    return _setting(env, default, lambda _name, raw: raw, secret=True)


def path(env: str, default: str) -> Any:
    return _setting(env, Path(default).absolute(), lambda _name, raw: Path(raw).absolute())


def integer(env: str, default: int, minimum: int, maximum: int | None = None) -> Any:
    def read(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
            raise SettingsError(f"{name} must be {bounds}, got {value}")
        return value

    return _setting(env, default, read)


def _quarter_of_memory_mb(cap: int) -> int:
    """A quarter of this machine's memory, PostgreSQL's advice for shared_buffers, at most
    `cap` and at least PostgreSQL's default."""
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(128, min(cap, total_mb // 4))


def number(env: str, default: float, minimum: float, maximum: float | None = None) -> Any:
    def read(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if value != value or value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum else "")
            raise SettingsError(f"{name} must be {bounds}, got {raw}")
        return value

    return _setting(env, default, read)


def choice(env: str, default: str, allowed: tuple[str, ...]) -> Any:
    def read(name: str, raw: str) -> str:
        for option in allowed:
            if raw.lower() == option.lower():
                return option
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")

    return _setting(env, default, read)


def flag(env: str, default: bool) -> Any:
    def read(name: str, raw: str) -> bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    return _setting(env, default, read)


def words(env: str, default: str) -> Any:
    """A comma-separated list; "none" for an empty one."""

    def read(_name: str, raw: str) -> tuple[str, ...]:
        if raw.lower() == "none":
            return ()
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    return _setting(env, read(env, default), read)


def subject_roles(env: str) -> Any:
    """Client-certificate subjects and their roles: `SUBJECT=ROLE;SUBJECT=ROLE`, each
    subject as `openssl x509 -noout -subject -nameopt RFC2253` prints it."""

    def read(name: str, raw: str) -> tuple[tuple[str, str], ...]:
        pairs = []
        for entry in filter(None, (part.strip() for part in raw.split(";"))):
            subject, _, role = entry.rpartition("=")
            if not subject.strip() or role.strip() not in ("client", "admin"):
                raise SettingsError(
                    f"{name} takes SUBJECT=ROLE pairs separated by ';', the role client or "
                    f"admin, for example 'O=Acme,CN=billing=admin'; got {entry!r}"
                )
            pairs.append((subject.strip(), role.strip()))
        return tuple(pairs)

    return _setting(env, (), read)


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR ranges; "none" for no network at all."""
    if raw.strip().lower() == "none":
        return ()
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(","))


def networks(env: str, default: str) -> Any:
    def read(name: str, raw: str) -> tuple[IPNetwork, ...]:
        try:
            return parse_networks(raw)
        except ValueError as error:
            raise SettingsError(
                f"{name} must be comma-separated addresses or CIDR ranges, or none: {error}"
            ) from None

    return _setting(env, parse_networks(default), read)


def rate(env: str, default: str) -> Any:
    def read(name: str, raw: str) -> Rate:
        try:
            return parse_rate(raw)
        except ValueError as error:
            raise SettingsError(f"{name}: {error}") from None

    return _setting(env, parse_rate(default), read)


@dataclass(frozen=True)
class ServerSettings:
    grpc_address: str = text("GRPC_ADDRESS", "127.0.0.1:50051")
    shutdown_grace_seconds: float = number("SHUTDOWN_GRACE_SECONDS", 15.0, 0.0)
    # How long a stopping server still takes new calls after it says NOT_SERVING, so that
    # balancers probing its health (the edge, Kubernetes) stop sending it calls first.
    shutdown_drain_seconds: float = number("SHUTDOWN_DRAIN_SECONDS", 0.0, 0.0, 300.0)
    health_check_interval_seconds: float = number("HEALTH_CHECK_INTERVAL_SECONDS", 2.0, 0.05)
    dependency_timeout_seconds: float = number("DEPENDENCY_TIMEOUT_SECONDS", 2.0, 0.05)
    # The largest request message accepted (an upload sends its file in pieces below this).
    max_receive_message_bytes: int = integer("MAX_RECEIVE_MESSAGE_BYTES", 4 * 1024 * 1024, 1024)
    # "production" refuses `chatbot-server seed`.
    environment: str = text("ENVIRONMENT", "development")
    # A connection older than this is asked to go away (GOAWAY), so that long-lived clients
    # spread over replicas added since; 0 keeps connections for ever.
    max_connection_age_seconds: float = number("GRPC_MAX_CONNECTION_AGE_SECONDS", 1800.0, 0.0)
    # How long calls on such a connection may still finish: longer than the longest answer.
    max_connection_age_grace_seconds: float = number(
        "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 300.0, 0.0
    )
    # host:port of the Prometheus endpoint (/metrics); unset serves no metrics.
    metrics_address: str | None = optional_text("METRICS_ADDRESS")


@dataclass(frozen=True)
class TlsSettings:
    # PEM files of the gRPC port's certificate (chain) and private key, read again when
    # they change; both unset serves plain text.
    cert_file: str | None = optional_text("TLS_CERT_FILE")
    key_file: str | None = optional_text("TLS_KEY_FILE")
    # The CAs (PEM) client certificates must chain to; set, every client must present one.
    client_ca_file: str | None = optional_text("TLS_CLIENT_CA_FILE")
    # Roles of client-certificate subjects that call without an API key; others are client.
    client_roles: tuple[tuple[str, str], ...] = subject_roles("TLS_CLIENT_ROLES")
    # Refuse to start without TLS.
    required: bool = flag("REQUIRE_TLS", False)

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True)
class TracingSettings:
    # none (off), otlp (OTLP over HTTP) or console.
    exporter: str = choice("OTEL_TRACES_EXPORTER", "none", ("none", "otlp", "console"))
    service_name: str = text("OTEL_SERVICE_NAME", "chatbot")
    # The collector's base URL; unset uses http://localhost:4318.
    otlp_endpoint: str | None = optional_text("OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class LogSettings:
    level: str = choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
    format: str = choice("LOG_FORMAT", "json", ("json", "console"))


@dataclass(frozen=True)
class DatabaseSettings:
    # The restricted role's URL; unset starts the embedded PostgreSQL.
    url: str | None = secret("DATABASE_URL")
    # The schema owner's URL, used only by `migrate` and `bootstrap`.
    migration_url: str | None = secret("MIGRATION_DATABASE_URL")
    # A superuser's URL, used only by `bootstrap`.
    superuser_url: str | None = secret("SUPERUSER_DATABASE_URL")
    app_role: str = text("DATABASE_APP_ROLE", "chatbot_app")
    pool_min_size: int = integer("DB_POOL_MIN_SIZE", 1, 0)
    pool_max_size: int = integer("DB_POOL_MAX_SIZE", 10, 1)
    # PostgreSQL's statement_timeout for every statement the server runs.
    statement_timeout_seconds: float = number("DATABASE_STATEMENT_TIMEOUT_SECONDS", 30.0, 0.1)
    embedded_dir: Path = path("EMBEDDED_POSTGRES_DIR", ".data/postgres")
    embedded_port: int = integer("EMBEDDED_POSTGRES_PORT", 54329, 1, 65535)
    # PostgreSQL's own default of 128 MB holds about 25,000 chunks with their indexes; past
    # that, searches read pages back from the operating system's cache on every call.
    embedded_shared_buffers_mb: int = integer(
        "EMBEDDED_POSTGRES_SHARED_BUFFERS_MB", _quarter_of_memory_mb(cap=1024), 16
    )

    @property
    def embedded(self) -> bool:
        """True when the server starts its own PostgreSQL."""
        return self.url is None


@dataclass(frozen=True)
class RedisSettings:
    # Unset: rate limits are kept per process.
    url: str | None = secret("REDIS_URL")


@dataclass(frozen=True)
class DocumentSettings:
    max_upload_bytes: int = integer("MAX_UPLOAD_BYTES", 50 * 1024 * 1024, 1)
    # What all uploads in progress may hold in memory together.
    max_upload_memory_bytes: int = integer("MAX_UPLOAD_MEMORY_BYTES", 200 * 1024 * 1024, 1)
    # About all-MiniLM-L6-v2's 128-token training inputs (README: Chunking).
    chunk_size_chars: int = integer("CHUNK_SIZE_CHARS", 600, 100)
    chunk_overlap_chars: int = integer("CHUNK_OVERLAP_CHARS", 100, 0)
    # At most this many embedding-model tokens per chunk (never more than the model reads).
    chunk_max_tokens: int = integer("CHUNK_MAX_TOKENS", 128, 8)
    watch_poll_seconds: float = number("WATCH_POLL_SECONDS", 0.25, 0.05)
    # A resumable upload that receives nothing for this long is discarded.
    upload_expiry_seconds: float = number("UPLOAD_EXPIRY_SECONDS", 3600.0, 10.0)


@dataclass(frozen=True)
class IngestionSettings:
    # Workers in this process; 0 leaves processing to `chatbot-server worker`.
    workers: int = integer("INGESTION_WORKERS", 1, 0, 16)
    lease_seconds: float = number("INGESTION_LEASE_SECONDS", 120.0, 1.0)
    max_attempts: int = integer("INGESTION_MAX_ATTEMPTS", 3, 1)
    poll_seconds: float = number("INGESTION_POLL_SECONDS", 2.0, 0.05)
    # Longer documents fail at once, rather than hold the queue for an hour.
    max_document_pages: int = integer("MAX_DOCUMENT_PAGES", 2000, 1)


@dataclass(frozen=True)
class EmbeddingSettings:
    # Unset: the offline local model. Set: an OpenAI-compatible /embeddings endpoint.
    base_url: str | None = optional_text("EMBEDDING_BASE_URL")
    api_key: str = secret("EMBEDDING_API_KEY", "")
    model: str = text("EMBEDDING_MODEL", "text-embedding-3-small")
    # The offline model when EMBEDDING_BASE_URL is unset (`retrieval.embeddings.LOCAL_MODELS`).
    local_model: str = choice(
        "EMBEDDING_LOCAL_MODEL",
        "use-multilingual-v3",
        ("use-multilingual-v3", "all-MiniLM-L6-v2-int8"),
    )
    # The offline model's threads per process. One serves best: a question's embedding is
    # too small to share, and replicas on one machine would contend; an ingestion worker
    # with cores to itself gains from more.
    threads: int = integer("EMBEDDING_THREADS", 1, 1)


@dataclass(frozen=True)
class RetrievalSettings:
    top_k: int = integer("SEARCH_TOP_K", 10, 1, 50)
    similarity_threshold: float = number("SIMILARITY_THRESHOLD", 0.3, 0.0, 1.0)


@dataclass(frozen=True)
class LlmSettings:
    # Unset: answers are offline, quoting the retrieved passages.
    api_key: str | None = secret("OPENROUTER_API_KEY")
    base_url: str = text("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
    connect_timeout_seconds: float = number("LLM_CONNECT_TIMEOUT_SECONDS", 5.0, 0.1)
    first_token_timeout_seconds: float = number("LLM_FIRST_TOKEN_TIMEOUT_SECONDS", 30.0, 0.1)
    total_timeout_seconds: float = number("LLM_TOTAL_TIMEOUT_SECONDS", 120.0, 0.1)
    max_retries: int = integer("LLM_MAX_RETRIES", 2, 0, 10)
    # Sent as `max_tokens`; also what a call's worst-case cost is reserved for.
    max_output_tokens: int = integer("LLM_MAX_OUTPUT_TOKENS", 1024, 1, 200_000)


@dataclass(frozen=True)
class AnswerSettings:
    model: str = text("DEFAULT_LLM_MODEL", "openai/gpt-4o-mini")
    multilingual_model: str = text("MULTILINGUAL_LLM_MODEL", "mistralai/mistral-7b-instruct")
    temperature: float = number("LLM_TEMPERATURE", 0.2, 0.0, 2.0)
    heartbeat_seconds: float = number("HEARTBEAT_SECONDS", 10.0, 0.05)
    history_token_budget: int = integer("HISTORY_TOKEN_BUDGET", 1500, 0)
    # How long an answer whose caller left goes on, waiting for ResumeAnswer; 0 cancels it
    # at once.
    resume_seconds: float = number("ANSWER_RESUME_SECONDS", 30.0, 0.0)
    # How long an answer whose server stopped renewing its lease waits before another
    # server records it as lost (ANSWER_LOST).
    lease_seconds: float = number("ANSWER_LEASE_SECONDS", 10.0, 1.0, 600.0)


@dataclass(frozen=True)
class IdentitySettings:
    # Calls without an API key are served, identified by their peer address.
    allow_anonymous: bool = flag("ALLOW_ANONYMOUS", True)
    # How long a replica trusts what it read about a key: revocation takes this long.
    api_key_cache_seconds: float = number("API_KEY_CACHE_SECONDS", 5.0, 0.0, 300.0)
    # Peers whose x-forwarded-for names the client (the edge); "none" believes no one.
    trusted_proxies: tuple[IPNetwork, ...] = networks("TRUSTED_PROXIES", LOOPBACK)
    # Failed authentications a peer may make; past them its keys are refused unread.
    auth_failure_limit: Rate = rate("AUTH_FAILURE_LIMIT", "20/minute")


@dataclass(frozen=True)
class EdgeSettings:
    # Where the edge serves browsers: the console at / and the API over gRPC-Web and Connect.
    web_address: str = text("WEB_ADDRESS", "127.0.0.1:8080")
    # Origins other than the edge's own whose pages may call the API.
    cors_allowed_origins: tuple[str, ...] = words(
        "CORS_ALLOWED_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000"
    )
    # The longest a streamed call (an answer, a document's progress) may stay open.
    max_stream_seconds: float = number("EDGE_MAX_STREAM_SECONDS", 3600.0, 1.0)
    # Connections the edge holds open at once; more are refused.
    max_connections: int = integer("EDGE_MAX_CONNECTIONS", 10_000, 1)
    # The longest any other call may take through the edge.
    request_timeout_seconds: float = number("EDGE_REQUEST_TIMEOUT_SECONDS", 60.0, 1.0)
    # PEM certificate and key browsers get (HTTPS), read again when the files are moved
    # into place; unset serves plain HTTP.
    tls_cert_file: str | None = optional_text("EDGE_TLS_CERT_FILE")
    tls_key_file: str | None = optional_text("EDGE_TLS_KEY_FILE")
    # The CAs (PEM) the servers' certificates chain to: set, the edge calls them over TLS.
    upstream_ca_file: str | None = optional_text("EDGE_UPSTREAM_CA_FILE")
    # The edge's own certificate and key for servers that require one (mutual TLS).
    upstream_cert_file: str | None = optional_text("EDGE_UPSTREAM_CERT_FILE")
    upstream_key_file: str | None = optional_text("EDGE_UPSTREAM_KEY_FILE")


@dataclass(frozen=True)
class RateLimitSettings:
    enabled: bool = flag("RATE_LIMIT_ENABLED", True)
    anonymous: Rate = rate("RATE_LIMIT_ANONYMOUS", "100/minute")
    authenticated: Rate = rate("RATE_LIMIT_AUTHENTICATED", "1000/hour")
    chat: Rate = rate("RATE_LIMIT_CHAT", "50/minute")
    upload: Rate = rate("RATE_LIMIT_UPLOAD", "10/hour")
    burst: Rate = rate("RATE_LIMIT_BURST", "20/second")
    # Redis unreachable: "open" serves unlimited, "closed" refuses with UNAVAILABLE.
    redis_failure: str = choice("RATE_LIMIT_REDIS_FAILURE", "open", ("open", "closed"))


@dataclass(frozen=True)
class BudgetSettings:
    daily_usd: float = number("DAILY_COST_BUDGET_USD", 50.0, 0.0)
    alert_threshold: float = number("BUDGET_ALERT_THRESHOLD", 0.8, 0.0, 1.0)
    # At 100 %: "refuse" chat calls, or answer them "offline" from the documents.
    exhausted_action: str = choice("BUDGET_EXHAUSTED_ACTION", "refuse", ("refuse", "offline"))
    alert_webhook_url: str | None = secret("BUDGET_ALERT_WEBHOOK_URL")
    # Comma-separated addresses; needs SMTP_URL.
    alert_email: str | None = optional_text("BUDGET_ALERT_EMAIL")
    smtp_url: str | None = secret("SMTP_URL")
    alert_sender: str = text("BUDGET_ALERT_FROM", "chatbot@localhost")


@dataclass(frozen=True)
class Settings:
    """Everything the server can be configured with. See README.md for the variables."""

    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    logging: LogSettings = field(default_factory=LogSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    ingestion: IngestionSettings = field(default_factory=IngestionSettings)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Builds settings from environment variables; unset or empty ones keep their default."""
        sections = {
            section.name: _read_section(cast(type[Any], section.default_factory), env)
            for section in dataclasses.fields(cls)
        }
        settings = cls(**sections)
        _check_consistency(settings)
        return settings


def _read_section(section: type[Any], env: Mapping[str, str]) -> Any:
    values = {}
    for setting in dataclasses.fields(section):
        name = setting.metadata["env"]
        raw = env.get(name, "").strip()
        if setting.metadata["secret"]:
            raw = _from_file(name, raw, env.get(f"{name}_FILE", "").strip())
        if raw:
            values[setting.name] = setting.metadata["read"](name, raw)
    return section(**values)


def _from_file(name: str, raw: str, file_name: str) -> str:
    """The secret's value: the variable's, or the content of the file `{name}_FILE` names."""
    if not file_name:
        return raw
    if raw:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    try:
        content = Path(file_name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise SettingsError(
            f"{name}_FILE names {file_name}, which cannot be read: {reason}"
        ) from None
    if not content:
        raise SettingsError(f"{name}_FILE names {file_name}, which is empty")
    return content


def _check_consistency(settings: Settings) -> None:
    metrics_address = settings.server.metrics_address
    if metrics_address is not None and not re.fullmatch(r"[^\s]*:\d{1,5}", metrics_address):
        raise SettingsError("METRICS_ADDRESS must be host:port, for example 127.0.0.1:9464")
    if not re.fullmatch(r"[^\s]*:\d{1,5}", settings.edge.web_address):
        raise SettingsError("WEB_ADDRESS must be host:port, for example 127.0.0.1:8080")
    for origin in settings.edge.cors_allowed_origins:
        if not re.fullmatch(r"https?://[^\s/]+", origin):
            raise SettingsError(
                f"CORS_ALLOWED_ORIGINS takes origins such as http://localhost:3000 "
                f"(scheme, host and port, no path), got {origin!r}"
            )
    if settings.database.pool_min_size > settings.database.pool_max_size:
        raise SettingsError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
    if settings.documents.chunk_overlap_chars >= settings.documents.chunk_size_chars:
        raise SettingsError("CHUNK_OVERLAP_CHARS must be smaller than CHUNK_SIZE_CHARS")
    if settings.documents.max_upload_memory_bytes < settings.documents.max_upload_bytes:
        raise SettingsError("MAX_UPLOAD_MEMORY_BYTES must be at least MAX_UPLOAD_BYTES")
    tls = settings.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        raise SettingsError("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
    if not tls.enabled and (tls.client_ca_file or tls.client_roles):
        raise SettingsError(
            "TLS_CLIENT_CA_FILE and TLS_CLIENT_ROLES need TLS: set TLS_CERT_FILE and TLS_KEY_FILE"
        )
    if tls.client_roles and not tls.client_ca_file:
        raise SettingsError(
            "TLS_CLIENT_ROLES needs TLS_CLIENT_CA_FILE, which makes clients send certificates"
        )
    edge = settings.edge
    for cert, key, names in (
        (edge.tls_cert_file, edge.tls_key_file, "EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE"),
        (edge.upstream_cert_file, edge.upstream_key_file,
         "EDGE_UPSTREAM_CERT_FILE and EDGE_UPSTREAM_KEY_FILE"),
    ):  # fmt: skip
        if (cert is None) != (key is None):
            raise SettingsError(f"{names} go together: set both or neither")
    if edge.upstream_cert_file and not edge.upstream_ca_file:
        raise SettingsError(
            "EDGE_UPSTREAM_CERT_FILE is for servers that speak TLS: set EDGE_UPSTREAM_CA_FILE"
        )
    if tls.required and not tls.enabled:
        raise SettingsError(
            "REQUIRE_TLS=true refuses to serve plain text: set TLS_CERT_FILE and TLS_KEY_FILE"
        )
    if settings.budget.alert_email and not settings.budget.smtp_url:
        raise SettingsError("BUDGET_ALERT_EMAIL needs SMTP_URL, the mail server to send through")
