"""Settings, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the server can be configured with. See README.md for the variables."""

    grpc_address: str = "127.0.0.1:50051"
    # The restricted role's URL; unset starts the embedded PostgreSQL.
    database_url: str | None = None
    # The schema owner's URL, used only by `migrate` and `bootstrap`.
    migration_database_url: str | None = None
    # A superuser's URL, used only by `bootstrap`.
    superuser_database_url: str | None = None
    database_app_role: str = "chatbot_app"
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    embedded_postgres_dir: Path = Path(".data/postgres")
    embedded_postgres_port: int = 54329
    redis_url: str | None = None
    shutdown_grace_seconds: float = 15.0
    health_check_interval_seconds: float = 2.0
    dependency_timeout_seconds: float = 2.0
    log_level: str = "INFO"
    log_format: str = "json"
    max_upload_bytes: int = 50 * 1024 * 1024
    chunk_size_chars: int = 1200
    chunk_overlap_chars: int = 200
    # Unset: the offline local model. Set: an OpenAI-compatible /embeddings endpoint.
    embedding_base_url: str | None = None
    embedding_api_key: str = ""
    embedding_model: str = "text-embedding-3-small"
    embedding_threads: int = 2
    # Ingestion workers in this process; 0 leaves processing to `chatbot-server worker`.
    ingestion_workers: int = 1
    ingestion_lease_seconds: float = 120.0
    ingestion_max_attempts: int = 3
    ingestion_poll_seconds: float = 2.0
    search_top_k: int = 10
    similarity_threshold: float = 0.3
    watch_poll_seconds: float = 0.25
    # Unset: answers are offline, quoting the retrieved passages.
    openrouter_api_key: str | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    default_llm_model: str = "openai/gpt-4o-mini"
    multilingual_llm_model: str = "mistralai/mistral-7b-instruct"
    llm_temperature: float = 0.2
    llm_connect_timeout_seconds: float = 5.0
    llm_first_token_timeout_seconds: float = 30.0
    llm_total_timeout_seconds: float = 120.0
    llm_max_retries: int = 2
    heartbeat_seconds: float = 10.0
    history_token_budget: int = 1500

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Builds settings from environment variables; unset or empty ones keep their default."""
        reader = _EnvReader(env)
        defaults = cls()
        settings = cls(
            grpc_address=reader.text("GRPC_ADDRESS", defaults.grpc_address),
            database_url=reader.optional_text("DATABASE_URL"),
            migration_database_url=reader.optional_text("MIGRATION_DATABASE_URL"),
            superuser_database_url=reader.optional_text("SUPERUSER_DATABASE_URL"),
            database_app_role=reader.text("DATABASE_APP_ROLE", defaults.database_app_role),
            db_pool_min_size=reader.integer("DB_POOL_MIN_SIZE", defaults.db_pool_min_size, 0),
            db_pool_max_size=reader.integer("DB_POOL_MAX_SIZE", defaults.db_pool_max_size, 1),
            embedded_postgres_dir=Path(
                reader.text("EMBEDDED_POSTGRES_DIR", str(defaults.embedded_postgres_dir))
            ).absolute(),
            embedded_postgres_port=reader.integer(
                "EMBEDDED_POSTGRES_PORT", defaults.embedded_postgres_port, 1, 65535
            ),
            redis_url=reader.optional_text("REDIS_URL"),
            shutdown_grace_seconds=reader.number(
                "SHUTDOWN_GRACE_SECONDS", defaults.shutdown_grace_seconds, 0.0
            ),
            health_check_interval_seconds=reader.number(
                "HEALTH_CHECK_INTERVAL_SECONDS", defaults.health_check_interval_seconds, 0.05
            ),
            dependency_timeout_seconds=reader.number(
                "DEPENDENCY_TIMEOUT_SECONDS", defaults.dependency_timeout_seconds, 0.05
            ),
            log_level=reader.choice(
                "LOG_LEVEL", defaults.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            log_format=reader.choice("LOG_FORMAT", defaults.log_format, ("json", "console")),
            max_upload_bytes=reader.integer("MAX_UPLOAD_BYTES", defaults.max_upload_bytes, 1),
            chunk_size_chars=reader.integer("CHUNK_SIZE_CHARS", defaults.chunk_size_chars, 100),
            chunk_overlap_chars=reader.integer(
                "CHUNK_OVERLAP_CHARS", defaults.chunk_overlap_chars, 0
            ),
            embedding_base_url=reader.optional_text("EMBEDDING_BASE_URL"),
            embedding_api_key=reader.text("EMBEDDING_API_KEY", defaults.embedding_api_key),
            embedding_model=reader.text("EMBEDDING_MODEL", defaults.embedding_model),
            embedding_threads=reader.integer("EMBEDDING_THREADS", defaults.embedding_threads, 1),
            ingestion_workers=reader.integer(
                "INGESTION_WORKERS", defaults.ingestion_workers, 0, 16
            ),
            ingestion_lease_seconds=reader.number(
                "INGESTION_LEASE_SECONDS", defaults.ingestion_lease_seconds, 1.0
            ),
            ingestion_max_attempts=reader.integer(
                "INGESTION_MAX_ATTEMPTS", defaults.ingestion_max_attempts, 1
            ),
            ingestion_poll_seconds=reader.number(
                "INGESTION_POLL_SECONDS", defaults.ingestion_poll_seconds, 0.05
            ),
            search_top_k=reader.integer("SEARCH_TOP_K", defaults.search_top_k, 1, 50),
            similarity_threshold=reader.number(
                "SIMILARITY_THRESHOLD", defaults.similarity_threshold, 0.0
            ),
            watch_poll_seconds=reader.number(
                "WATCH_POLL_SECONDS", defaults.watch_poll_seconds, 0.05
            ),
            openrouter_api_key=reader.optional_text("OPENROUTER_API_KEY"),
            openrouter_base_url=reader.text("OPENROUTER_BASE_URL", defaults.openrouter_base_url),
            default_llm_model=reader.text("DEFAULT_LLM_MODEL", defaults.default_llm_model),
            multilingual_llm_model=reader.text(
                "MULTILINGUAL_LLM_MODEL", defaults.multilingual_llm_model
            ),
            llm_temperature=reader.number("LLM_TEMPERATURE", defaults.llm_temperature, 0.0),
            llm_connect_timeout_seconds=reader.number(
                "LLM_CONNECT_TIMEOUT_SECONDS", defaults.llm_connect_timeout_seconds, 0.1
            ),
            llm_first_token_timeout_seconds=reader.number(
                "LLM_FIRST_TOKEN_TIMEOUT_SECONDS", defaults.llm_first_token_timeout_seconds, 0.1
            ),
            llm_total_timeout_seconds=reader.number(
                "LLM_TOTAL_TIMEOUT_SECONDS", defaults.llm_total_timeout_seconds, 0.1
            ),
            llm_max_retries=reader.integer("LLM_MAX_RETRIES", defaults.llm_max_retries, 0, 10),
            heartbeat_seconds=reader.number("HEARTBEAT_SECONDS", defaults.heartbeat_seconds, 0.05),
            history_token_budget=reader.integer(
                "HISTORY_TOKEN_BUDGET", defaults.history_token_budget, 0
            ),
        )
        if settings.db_pool_min_size > settings.db_pool_max_size:
            raise SettingsError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        if settings.chunk_overlap_chars >= settings.chunk_size_chars:
            raise SettingsError("CHUNK_OVERLAP_CHARS must be smaller than CHUNK_SIZE_CHARS")
        if settings.similarity_threshold > 1:
            raise SettingsError("SIMILARITY_THRESHOLD must be from 0 to 1")
        return settings

    @property
    def embedded_database(self) -> bool:
        """True when the server starts its own PostgreSQL."""
        return self.database_url is None


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional_text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional_text(name) or default

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        raw = self.optional_text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
            raise SettingsError(f"{name} must be {bounds}, got {value}")
        return value

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self.optional_text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.optional_text(name)
        if raw is None:
            return default
        for option in allowed:
            if raw.lower() == option.lower():
                return option
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
