"""Hybrid retrieval: pgvector nearest neighbours and full-text search, fused by rank.

The two candidate lists come from one SQL statement; fusing, thresholding and cutting to
top k are pure functions below, tested without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import numpy as np
import numpy.typing as npt

from chatbot_server.retrieval.embeddings import Embedder
from chatbot_server.retrieval.text_search import plain_words, text_search_config

# Reciprocal rank fusion's damping constant, as in Cormack et al. (2009).
RRF_K = 60
# Full-text matches ranked per query at most: common words match thousands of chunks, and
# ranking them all dominates the tail latency.
FULL_TEXT_MATCH_LIMIT = 2000
VECTOR = "vector"
FULL_TEXT = "full_text"


@dataclass(frozen=True)
class SearchFilter:
    document_ids: list[UUID] | None = None
    language: str | None = None
    document_type: str | None = None
    tags: list[str] | None = None


@dataclass(frozen=True)
class Candidate:
    """A chunk either signal found, with its rank in each list (None when absent)."""

    chunk_id: UUID
    document_id: UUID
    document_title: str
    page_number: int
    section_title: str
    text: str
    ordinal: int
    similarity: float
    vector_rank: int | None
    text_rank: int | None


@dataclass(frozen=True)
class Hit:
    candidate: Candidate
    relevance: float
    signals: tuple[str, ...]


def fuse(candidates: Sequence[Candidate], similarity_threshold: float, top_k: int) -> list[Hit]:
    """Reciprocal rank fusion, then the threshold, then the best `top_k`.

    Relevance is the fused score scaled to 0..1 (1 = first in both lists). A chunk only
    full-text search found is kept whatever its vector similarity: the words matched.
    """
    best_possible = 2 / (RRF_K + 1)
    hits = []
    for candidate in candidates:
        score = 0.0
        signals = []
        if candidate.vector_rank is not None:
            score += 1 / (RRF_K + candidate.vector_rank)
            signals.append(VECTOR)
        if candidate.text_rank is not None:
            score += 1 / (RRF_K + candidate.text_rank)
            signals.append(FULL_TEXT)
        if candidate.text_rank is None and candidate.similarity < similarity_threshold:
            continue
        hits.append(Hit(candidate, score / best_possible, tuple(signals)))
    hits.sort(key=lambda hit: (-hit.relevance, -hit.candidate.similarity))
    return hits[:top_k]


_CANDIDATES_SQL = f"""
WITH allowed AS (
    SELECT id, title FROM documents
    WHERE status = 'READY'
      AND ($4::uuid[] IS NULL OR id = ANY ($4))
      AND ($5::text IS NULL OR language = $5)
      AND ($6::text IS NULL OR document_type = $6)
      AND ($7::text[] IS NULL OR tags && $7)
),
nearest AS (
    SELECT c.id, c.embedding <=> $1 AS distance
    FROM chunks c
    WHERE c.embedding_model = $2 AND c.document_id IN (SELECT id FROM allowed)
    ORDER BY c.embedding <=> $1
    LIMIT $3
),
matched AS (
    SELECT c.id, c.content_tsv
    FROM chunks c, websearch_to_tsquery($8::regconfig, $9) AS query
    WHERE c.content_tsv @@ query AND c.document_id IN (SELECT id FROM allowed)
    LIMIT {FULL_TEXT_MATCH_LIMIT}
),
worded AS (
    SELECT m.id, ts_rank_cd(m.content_tsv, websearch_to_tsquery($8::regconfig, $9)) AS score
    FROM matched m
    ORDER BY score DESC
    LIMIT $3
),
ranked AS (
    SELECT id, row_number() OVER (ORDER BY distance) AS vector_rank, NULL::bigint AS text_rank
    FROM nearest
    UNION ALL
    SELECT id, NULL, row_number() OVER (ORDER BY score DESC) FROM worded
)
SELECT c.id AS chunk_id, c.document_id, a.title AS document_title, c.page_number,
       c.section_title, c.content AS text, c.ordinal,
       CASE WHEN c.embedding_model = $2 THEN 1 - (c.embedding <=> $1) ELSE 0 END AS similarity,
       min(r.vector_rank) AS vector_rank, min(r.text_rank) AS text_rank
FROM ranked r
JOIN chunks c ON c.id = r.id
JOIN allowed a ON a.id = c.document_id
GROUP BY c.id, a.title
"""


async def find_candidates(
    pool: asyncpg.Pool,
    query: str,
    query_vector: npt.NDArray[np.float32],
    embedding_model: str,
    where: SearchFilter,
    per_signal: int,
    language: str,
) -> list[Candidate]:
    """Up to `per_signal` chunks from each signal, in one round trip."""
    async with pool.acquire() as conn, conn.transaction():
        # Keep scanning the HNSW graph until enough rows pass the filters (pgvector 0.8).
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        # A generic plan cannot know how many rows the words match and may scan every chunk;
        # plan each query for its own words and filters.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(
            _CANDIDATES_SQL,
            query_vector, embedding_model, per_signal,
            where.document_ids, where.language, where.document_type, where.tags,
            text_search_config(language), query,
        )  # fmt: skip
    return [Candidate(**dict(row)) for row in rows]


async def retrieve(
    pool: asyncpg.Pool,
    embedder: Embedder,
    query: str,
    where: SearchFilter,
    top_k: int,
    similarity_threshold: float,
) -> list[Hit]:
    """The `top_k` chunks most relevant to `query`: the Search RPC's path, shared by answers."""
    (query_vector,) = await embedder.embed([query])
    candidates = await find_candidates(
        pool,
        plain_words(query),
        query_vector,
        embedder.model_name,
        where,
        per_signal=max(top_k * 4, 40),
        language=where.language or "en",
    )
    return fuse(candidates, similarity_threshold, top_k)
