"""Turning text into vectors: the offline local model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
import numpy as np
import numpy.typing as npt

from chatbot_server.money.pricing import call_cost_micro_usd
from chatbot_server.platform import metrics
from chatbot_server.retrieval import local_model, multilingual_model


class LocalModel(Protocol):
    """An offline model, run in the server's process."""

    model_name: str
    dimensions: int
    max_tokens: int

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


# The offline models, by the name documents record; the first is the default.
LOCAL_MODELS: dict[str, Callable[[int], LocalModel]] = {
    multilingual_model.MODEL_NAME: multilingual_model.MultilingualEmbedder,
    local_model.MODEL_NAME: local_model.LocalEmbedder,
}
# What an OpenAI-compatible endpoint is asked for (text-embedding-3's `dimensions`).
REMOTE_DIMENSIONS = 384

Vectors = npt.NDArray[np.float32]


async def embed_in_batches(embedder: Embedder, texts: Sequence[str], batch: int) -> Vectors:
    """Vectors for any number of texts, asking for `batch` at a time (endpoints cap a call)."""
    return stacked(
        [await embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    )


def stacked(parts: Sequence[Vectors]) -> Vectors:
    """The rows of `parts` in one array; an empty one when there are none."""
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


class EmbeddingError(RuntimeError):
    """The embedding model could not embed; the message says why."""


class Embedder(Protocol):
    """What ingestion and search need of an embedding model."""

    @property
    def model_name(self) -> str: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors of the store's dimension, one row per text."""
        ...

    async def warm_up(self) -> None:
        """Loads what the first call would, so that no caller waits for it."""
        ...


class TimedEmbeddings:
    """Any embedder, with each batch's latency in the `chatbot_embedding_duration_seconds`
    histogram."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.model_name = inner.model_name
        self.max_tokens = inner.max_tokens
        self.dimensions = inner.dimensions

    async def embed(self, texts: Sequence[str]) -> Vectors:
        with metrics.EMBEDDING_SECONDS.time():
            return await self._inner.embed(texts)

    async def warm_up(self) -> None:
        await self._inner.warm_up()


class LocalEmbeddings:
    """An offline model, run in a worker thread (NumPy and ONNX Runtime release the GIL)."""

    def __init__(self, model_name: str, threads: int) -> None:
        self._model = LOCAL_MODELS[model_name](threads)
        self.model_name = self._model.model_name
        self.max_tokens = self._model.max_tokens
        self.dimensions = self._model.dimensions

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self._model.embed_sync, texts)

    async def warm_up(self) -> None:
        await asyncio.to_thread(self._model.embed_sync, ["warm up"])


@dataclass(frozen=True)
class EmbeddingUsage:
    """One call to a paid embedding endpoint, for the cost log."""

    model: str
    prompt_tokens: int
    cost_micro_usd: int
    cost_source: str
    latency_ms: int
    error: str


UsageRecorder = Callable[[EmbeddingUsage], Awaitable[None]]


class RemoteEmbeddings:
    """An OpenAI-compatible `/embeddings` endpoint, asked for vectors of the store's dimension
    (the `dimensions` parameter of text-embedding-3 models). Every call is cost-logged."""

    # Long enough for any chunk the chunker makes; the endpoint enforces its own limit.
    max_tokens = 8000
    dimensions = REMOTE_DIMENSIONS

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        model: str,
        record_usage: UsageRecorder,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.model_name = model
        self._record_usage = record_usage

    async def warm_up(self) -> None:
        """Nothing to load; the endpoint is only called for real work."""

    async def embed(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        payload = {"model": self.model_name, "input": list(texts), "dimensions": REMOTE_DIMENSIONS}
        try:
            response = await self._client.post(self._url, json=payload, headers=self._headers)
            response.raise_for_status()
            body = response.json()
            vectors = np.array(
                [item["embedding"] for item in sorted(body["data"], key=lambda d: d["index"])],
                dtype=np.float32,
            )
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as error:
            reason = _describe(error)
            await self._record(0, None, started, reason)
            raise EmbeddingError(f"embedding endpoint {self._url} failed: {reason}") from error
        usage = body.get("usage") or {}
        await self._record(int(usage.get("prompt_tokens", 0)), usage.get("cost"), started, "")
        if vectors.shape != (len(texts), REMOTE_DIMENSIONS):
            raise EmbeddingError(
                f"embedding endpoint returned vectors of shape {vectors.shape}, expected "
                f"({len(texts)}, {REMOTE_DIMENSIONS}); choose a model that supports `dimensions`"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    async def _record(self, tokens: int, provider_cost: object, started: float, error: str) -> None:
        micro, source = call_cost_micro_usd(self.model_name, tokens, 0, provider_cost)
        await self._record_usage(
            EmbeddingUsage(
                model=self.model_name,
                prompt_tokens=tokens,
                cost_micro_usd=micro,
                cost_source=source,
                latency_ms=round((time.perf_counter() - started) * 1000),
                error=error,
            )
        )


def _describe(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}: {error.response.text[:200]}"
    return f"{type(error).__name__}: {error}"
