"""Hybrid retrieval: pgvector nearest neighbours and full-text search, fused by rank.

The two candidate lists come from one SQL statement; fusing, thresholding and cutting to
top k are pure functions below, tested without a database.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from uuid import UUID

import asyncpg
import numpy as np
import numpy.typing as npt

from chatbot_server.platform.tracing import tracer
from chatbot_server.retrieval.embeddings import Embedder
from chatbot_server.retrieval.languages import (
    DEFAULT_LANGUAGE,
    SUPPORTED,
    detect_language,
    rarest_word_frequency,
    search_text,
    words_of,
)
from chatbot_server.retrieval.text_search import text_search_config

# Reciprocal rank fusion's damping constant: a small constant lets first places count (the
# classic 60 flattens them). In hybrid mode a full-text rank counts in proportion to the
# share of the question's words the chunk holds (`term_coverage`): a chunk that ranks first
# on one rare word of a paraphrased question is weak evidence, one holding most of a
# literal question's words is strong.
RRF_K = 10
# (vector, full text) weights by the question's language, chosen on the dev set's tune half
# (`scripts/tune_retrieval.py`; the README has the figures).
FUSION_WEIGHTS = {"en": (1.5, 1.25), "de": (2.0, 0.75), "fr": (1.5, 2.0)}
DEFAULT_FUSION_WEIGHTS = (1.0, 1.0)
# The vector signal ranks the nearest chunks by their distance to the question minus this
# share of their section title's similarity to it (`section_embeddings`): a paraphrased
# question often matches what a section is about better than any one of its passages.
SECTION_WEIGHT = 0.25
# Full-text candidates come from the question's rarest terms, at most this many chunks per
# term: a common word matches thousands of chunks, and ranking them all dominates the tail.
TERM_MATCH_LIMIT = 400
CANDIDATE_TERMS = 12
# A word in at least this share of all chunks is looked up only when no chunk holds a rarer
# word of the question: it weighs little, and the chunks holding rarer words are scored
# with it anyway. When it is looked up, chunks are read until enough hold it, not through
# the GIN index: the index would first list every chunk holding it (60,000 of 100,000 took
# 8 ms; 5,000 took 3 ms, more than reading the rows). Both ways take the first matches in
# table order.
COMMON_TERM_SHARE = 0.05
COMMON_TERM_MATCH_LIMIT = 100
# The shortest part of a German compound that a question's compound is looked up by.
MIN_COMPOUND_PART = 4
# The shortest stem, in another language's documents, that makes a question's word present.
MIN_FOREIGN_STEM = 5
VECTOR = "vector"
FULL_TEXT = "full_text"


class RetrievalMode(enum.Enum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


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
    # Share of the question's informative terms (weighted by rarity) the chunk contains.
    term_coverage: float


@dataclass(frozen=True)
class Hit:
    candidate: Candidate
    relevance: float
    signals: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """What the question's words say about whether the documents can answer it."""

    # The share of the question's informative words (weighted by rarity) that no chunk of
    # any document holds, when documents in the question's language exist (0 otherwise).
    missing_term_share: float
    # How common in everyday language the rarest of the question's words that no chunk
    # holds is (`languages.word_frequency`, Zipf scale; COMMON when none is missing):
    # "Kubernetes" or "debcargo" name a thing the documents never mention, "spreadsheet"
    # is everyday wording for something they put otherwise.
    missing_word_frequency: float


@dataclass(frozen=True)
class Retrieval:
    """The chunks to show, the question's language, and the evidence of an answer."""

    hits: list[Hit]
    evidence: Evidence
    language: str


def fuse(
    candidates: Sequence[Candidate],
    similarity_threshold: float,
    top_k: int,
    mode: RetrievalMode = RetrievalMode.HYBRID,
    language: str = DEFAULT_LANGUAGE,
) -> list[Hit]:
    """Weighted reciprocal rank fusion of the signals `mode` uses, then the threshold, then
    the best `top_k`.

    Relevance is the fused score scaled to 0..1 (1 = first in every list used, holding all
    the question's words). A chunk full-text search found is kept whatever its vector
    similarity: the words matched.
    """
    weights = {
        RetrievalMode.HYBRID: FUSION_WEIGHTS.get(language, DEFAULT_FUSION_WEIGHTS),
        RetrievalMode.VECTOR: (1.0, 0.0),
        RetrievalMode.TEXT: (0.0, 1.0),
    }[mode]
    best_possible = sum(weights) / (RRF_K + 1)
    hits = []
    for candidate in candidates:
        score = 0.0
        signals = []
        if candidate.vector_rank is not None and weights[0]:
            score += weights[0] / (RRF_K + candidate.vector_rank)
            signals.append(VECTOR)
        if candidate.text_rank is not None and weights[1]:
            coverage = min(candidate.term_coverage, 1.0) if mode is RetrievalMode.HYBRID else 1.0
            score += weights[1] * coverage / (RRF_K + candidate.text_rank)
            signals.append(FULL_TEXT)
        if not signals:
            continue
        if FULL_TEXT not in signals and candidate.similarity < similarity_threshold:
            continue
        hits.append(Hit(candidate, score / best_possible, tuple(signals)))
    hits.sort(key=lambda hit: (-hit.relevance, -hit.candidate.similarity))
    return hits[:top_k]


# Whether chunk `c` belongs to a READY document the filter allows. A lookup by primary key
# per chunk: the HNSW scan stops after 40 allowed chunks, and a list of every allowed
# document, built first, cost more than the lookups (1,000 documents: 1 ms, then a linear
# search of it per chunk).
_ALLOWED_CHUNK = """
EXISTS (
    SELECT 1 FROM documents d
    WHERE d.id = c.document_id AND d.status = 'READY'
      AND ($4::uuid[] IS NULL OR d.id = ANY ($4))
      AND ($5::text IS NULL OR d.language = $5)
      AND ($6::text IS NULL OR d.document_type = $6)
      AND ($7::text[] IS NULL OR d.tags && $7)
)"""


@cache
def _candidates_sql(dimensions: int) -> str:
    """The statement for vectors of `dimensions`: the HNSW index of that dimension is only
    used when the query names it (`0006_languages_and_models.sql`)."""
    return f"""
WITH asked AS (
    SELECT lexeme, positions FROM unnest(to_tsvector($8::regconfig, $9))
),
held_abroad AS (
    -- The question's words as the other languages stem them, where their documents hold
    -- them; stems shorter than MIN_FOREIGN_STEM are too ambiguous to count ("conda" is
    -- "cond" to the French stemmer).
    SELECT w.positions
    FROM unnest($12::regconfig[]) AS other (config)
    CROSS JOIN LATERAL unnest(to_tsvector(other.config, $9)) AS w
    JOIN lexeme_stats s ON s.lexeme = w.lexeme AND s.chunks > 0
    WHERE length(w.lexeme) >= {MIN_FOREIGN_STEM}
),
compound_heads AS (
    -- A German compound of the question that no chunk holds stands for its longest final
    -- part that some chunk does ("Paketverwaltungswerkzeug" for "werkzeug"): documents
    -- split their own compounds (`retrieval.languages`), questions are split here.
    SELECT DISTINCT ON (a.lexeme) a.lexeme AS compound, s.lexeme AS head
    FROM asked a
    CROSS JOIN LATERAL
        generate_series(length(a.lexeme) - {MIN_COMPOUND_PART}, {MIN_COMPOUND_PART}, -1) AS k
    JOIN lexeme_stats s ON s.lexeme = right(a.lexeme, k) AND s.chunks > 0
    WHERE $8::regconfig = 'german'::regconfig
      AND length(a.lexeme) >= 2 * {MIN_COMPOUND_PART}
      AND NOT EXISTS (SELECT 1 FROM lexeme_stats h WHERE h.lexeme = a.lexeme AND h.chunks > 0)
    ORDER BY a.lexeme, k DESC
),
terms AS (
    -- The question's words as the documents' lexemes (stemmed, stop words out), each
    -- weighted by BM25's inverse document frequency; a word no chunk holds weighs most.
    SELECT q.lexeme, quote_literal(q.lexeme)::tsquery AS query,
           ln(1 + (n.chunks - coalesce(s.chunks, 0) + 0.5)::float8
                  / (coalesce(s.chunks, 0) + 0.5)) AS idf,
           coalesce(s.chunks, 0) AS chunks,
           coalesce(s.chunks, 0) >= n.chunks * {COMMON_TERM_SHARE} AS common
    FROM (
        SELECT DISTINCT coalesce(c.head, a.lexeme) AS lexeme
        FROM asked a LEFT JOIN compound_heads c ON c.compound = a.lexeme
    ) q
    CROSS JOIN chunk_totals n
    LEFT JOIN lexeme_stats s ON s.lexeme = q.lexeme
),
nearest AS (
    SELECT c.id, c.document_id, c.section_title, c.embedding <=> $1 AS distance
    FROM chunks c
    WHERE vector_dims(c.embedding) = {dimensions} AND c.embedding_model = $2
      AND {_ALLOWED_CHUNK}
    ORDER BY c.embedding::vector({dimensions}) <=> $1::vector({dimensions})
    LIMIT $3
),
placed AS (
    -- The nearest chunks reordered with their section title's meaning (SECTION_WEIGHT).
    SELECT n.id,
           n.distance - {SECTION_WEIGHT} * coalesce(1 - (s.embedding <=> $1), 0) AS distance
    FROM nearest n
    LEFT JOIN section_embeddings s
           ON s.document_id = n.document_id AND s.title = n.section_title
          AND s.embedding_model = $2
),
candidate_terms AS (
    SELECT query, common, chunks FROM terms WHERE $10 > 0 ORDER BY idf DESC LIMIT {CANDIDATE_TERMS}
),
matched AS (
    SELECT m.id, m.content_tsv
    FROM candidate_terms t
    CROSS JOIN LATERAL (
        SELECT c.id, c.content_tsv FROM chunks c
        WHERE NOT t.common AND c.content_tsv @@ t.query
          AND c.text_search_config = $8::regconfig AND {_ALLOWED_CHUNK}
        LIMIT {TERM_MATCH_LIMIT}
    ) m
    UNION ALL
    SELECT m.id, m.content_tsv
    FROM candidate_terms t
    CROSS JOIN LATERAL (
        -- IS TRUE keeps the planner off the index: see COMMON_TERM_SHARE.
        SELECT c.id, c.content_tsv FROM chunks c
        WHERE t.common
          AND NOT EXISTS (SELECT 1 FROM candidate_terms r WHERE NOT r.common AND r.chunks > 0)
          AND (c.content_tsv @@ t.query) IS TRUE
          AND c.text_search_config = $8::regconfig AND {_ALLOWED_CHUNK}
        LIMIT {COMMON_TERM_MATCH_LIMIT}
    ) m
),
own_language AS (
    SELECT EXISTS (SELECT 1 FROM documents WHERE status = 'READY'
                   AND split_part(language, '-', 1) = $11) AS present
),
any_term AS (
    SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery AS query FROM terms
),
worded AS (
    -- Rarer and more of the question's words first; among equals, more occurrences. Scored
    -- from the rows the lookups returned, so no chunk is read twice.
    SELECT id, score, frequency
    FROM (
        SELECT DISTINCT ON (m.id) m.id,
               (SELECT sum(t.idf) FROM terms t WHERE m.content_tsv @@ t.query) AS score,
               ts_rank(m.content_tsv, a.query) AS frequency
        FROM matched m CROSS JOIN any_term a
        ORDER BY m.id
    ) scored
    ORDER BY score DESC, frequency DESC, id
    LIMIT $10
),
ranked AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS vector_rank, NULL::bigint AS text_rank
    FROM placed
    UNION ALL
    SELECT id, NULL, row_number() OVER (ORDER BY score DESC, frequency DESC, id) FROM worded
)
SELECT c.id AS chunk_id, c.document_id, d.title AS document_title, c.page_number,
       c.section_title, c.content AS text, c.ordinal,
       CASE WHEN c.embedding_model = $2 THEN 1 - (c.embedding <=> $1) ELSE 0 END AS similarity,
       min(r.vector_rank) AS vector_rank, min(r.text_rank) AS text_rank,
       coalesce((SELECT sum(t.idf) FROM terms t WHERE c.content_tsv @@ t.query)
                / nullif((SELECT sum(idf) FROM terms), 0), 0) AS term_coverage,
       -- The same for every row: the question's words no chunk holds, when documents in its
       -- language exist (see Evidence).
       CASE WHEN o.present
            THEN coalesce((SELECT sum(idf) FILTER (WHERE chunks = 0) / nullif(sum(idf), 0)
                           FROM terms), 0)
            ELSE 0 END AS missing_term_share,
       -- Words as asked, before compounds stand for their heads: "Chromebooks" is missing
       -- even where "book" is not. A word held abroad (at the same word position) is not
       -- missing: "gmake" asked in French of an English manual.
       CASE WHEN o.present
            THEN (SELECT coalesce(array_agg(a.lexeme), '{{}}') FROM asked a
                  WHERE NOT EXISTS (SELECT 1 FROM lexeme_stats s
                                    WHERE s.lexeme = a.lexeme AND s.chunks > 0)
                    AND NOT EXISTS (SELECT 1 FROM held_abroad h
                                    WHERE h.positions && a.positions))
            ELSE '{{}}' END AS missing_terms
FROM ranked r
CROSS JOIN own_language o
JOIN chunks c ON c.id = r.id
-- Both lists hold allowed chunks only; the title comes by primary key.
JOIN documents d ON d.id = c.document_id
GROUP BY c.id, d.title, o.present
"""


_QUERY_COLUMNS = ("missing_term_share", "missing_terms")


@dataclass(frozen=True)
class MissingTerms:
    """The question's words (as lexemes) that no chunk holds in any language, when documents
    in its language exist, and the share of its informative words (weighted by rarity) that
    no chunk holds."""

    share: float
    lexemes: list[str]


async def find_candidates(
    pool: asyncpg.Pool,
    query: str,
    query_vector: npt.NDArray[np.float32],
    embedding_model: str,
    where: SearchFilter,
    language: str,
    vector_limit: int,
    text_limit: int,
) -> tuple[list[Candidate], MissingTerms]:
    """Up to `vector_limit` nearest chunks (in any language) and `text_limit` full-text
    matches among the chunks in the query's `language`, in one round trip: the pool's
    sessions carry the settings this statement needs
    (`platform.database.SEARCH_SESSION_SETTINGS`). Also the query's words that no chunk
    holds."""
    rows = await pool.fetch(
        _candidates_sql(len(query_vector)),
        query_vector, embedding_model, vector_limit,
        where.document_ids, where.language, where.document_type, where.tags,
        text_search_config(language), search_text(query, language), text_limit,
        language.split("-")[0], other_configs(language),
    )  # fmt: skip
    missing = (
        MissingTerms(float(rows[0]["missing_term_share"]), list(rows[0]["missing_terms"]))
        if rows
        else MissingTerms(0.0, [])
    )
    candidates = [
        Candidate(**{k: v for k, v in row.items() if k not in _QUERY_COLUMNS}) for row in rows
    ]
    return candidates, missing


def other_configs(language: str) -> list[str]:
    """The text-search configurations of the supported languages other than `language`'s."""
    own = text_search_config(language)
    return [config for code in SUPPORTED if (config := text_search_config(code)) != own]


async def question_language(pool: asyncpg.Pool, text: str, given: str = "") -> str:
    """The language `given` for a question (its base code), else detected; a question too
    short to tell ("DMX port") is taken to be in the language most documents are in."""
    return given.split("-")[0] or detect_language(text) or await collection_language(pool)


async def collection_language(pool: asyncpg.Pool) -> str:
    """The language most READY documents are written in; the default when there are none."""
    language: str | None = await pool.fetchval(
        """
        SELECT split_part(language, '-', 1) FROM documents
        WHERE status = 'READY' AND language <> ''
        GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
        """
    )
    return language or DEFAULT_LANGUAGE


async def retrieve(
    pool: asyncpg.Pool,
    embedder: Embedder,
    query: str,
    where: SearchFilter,
    top_k: int,
    similarity_threshold: float,
    mode: RetrievalMode = RetrievalMode.HYBRID,
    language: str = "",
) -> Retrieval:
    """The `top_k` chunks most relevant to `query`: the Search RPC's path, shared by answers.
    The query's `language` is detected when not given (`question_language`)."""
    language = await question_language(pool, query, language)
    with tracer.start_as_current_span("retrieval", attributes={"retrieval.mode": mode.name}):
        with tracer.start_as_current_span("retrieval.embed_query"):
            (query_vector,) = await embedder.embed([query])
        per_signal = max(top_k * 4, 40)
        candidates, missing = await find_candidates(
            pool,
            query,
            query_vector,
            embedder.model_name,
            where,
            language=language,
            vector_limit=0 if mode is RetrievalMode.TEXT else per_signal,
            text_limit=0 if mode is RetrievalMode.VECTOR else per_signal,
        )
        hits = fuse(candidates, similarity_threshold, top_k, mode, language)
        return Retrieval(hits, question_evidence(query, language, missing), language)


def question_evidence(query: str, language: str, missing: MissingTerms) -> Evidence:
    """The evidence of an answer in the question's words that no chunk holds."""
    frequency = rarest_word_frequency(words_of(query, missing.lexemes), language)
    return Evidence(missing.share, frequency)
