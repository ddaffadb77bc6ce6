"""Documents, their bytes and their chunks in PostgreSQL: the named queries, nothing else."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import numpy as np
import numpy.typing as npt

from chatbot_server.documents.chunking import Chunk
from chatbot_server.platform.vector_codec import vector_text
from chatbot_server.retrieval.text_search import text_search_config

# PostgreSQL's binary COPY header (signature, flags, extension length), and the size of the
# pieces a document's bytes travel in.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_PIECE_BYTES = 1024 * 1024

DOCUMENT_COLUMNS = """
    id, title, filename, sha256, size_bytes, language, document_type, tags, status, error,
    warnings, page_count, chunk_count, embedding_model, embedding_dimensions, chunks_done,
    chunks_total, created_at, updated_at, processed_at
"""


@dataclass(frozen=True)
class DocumentRecord:
    """One row of `documents`."""

    id: UUID
    title: str
    filename: str
    sha256: str
    size_bytes: int
    language: str
    document_type: str
    tags: list[str]
    status: str
    error: str
    warnings: list[str]
    page_count: int
    chunk_count: int
    embedding_model: str
    embedding_dimensions: int
    chunks_done: int
    chunks_total: int
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DocumentRecord:
        return cls(**dict(row))


@dataclass(frozen=True)
class NewDocument:
    """The metadata an upload stores with the bytes."""

    title: str
    filename: str
    language: str
    document_type: str
    tags: list[str]
    # The upload gave no title: `title` is the file name, until the PDF's metadata names one.
    title_is_filename: bool = False
    # Made by `chatbot-server seed`, which processes it itself: stored as PROCESSING, leased
    # for an hour, so no worker takes it up meanwhile.
    seeded: bool = False


async def _copy_content(
    conn: asyncpg.Connection, document_id: UUID, content: bytes | bytearray
) -> None:
    """Writes a document's bytes by binary COPY in small pieces, so that the driver never
    makes another copy of the whole file (a bound parameter would be one, and more)."""

    async def pieces() -> AsyncIterator[bytes]:
        # The COPY header, then one row of two fields: the uuid's 16 bytes, the bytea.
        yield (
            _COPY_HEADER
            + struct.pack("!hi", 2, 16) + document_id.bytes
            + struct.pack("!i", len(content))
        )  # fmt: skip
        view = memoryview(content)
        for start in range(0, len(view), _COPY_PIECE_BYTES):
            yield bytes(view[start : start + _COPY_PIECE_BYTES])
        yield struct.pack("!h", -1)

    await conn.copy_to_table(
        "document_contents", source=pieces(), columns=["document_id", "content"], format="binary"
    )


@dataclass(frozen=True)
class DocumentFilter:
    status: str | None = None
    language: str | None = None
    document_type: str | None = None
    tag: str | None = None


async def insert_document(
    pool: asyncpg.Pool,
    new: NewDocument,
    content: bytes | bytearray,
    sha256: str,
    overwrite: bool,
) -> tuple[DocumentRecord, bool]:
    """Stores a new document (`sha256` is of `content`), or returns the one with the same
    bytes (True) — queued again with the new metadata when `overwrite` is set."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""
            INSERT INTO documents
                (title, filename, sha256, size_bytes, language, language_given,
                 document_type, tags, title_is_filename, seeded, status, lease_expires_at)
            VALUES ($1, $2, $3, $4, $5, $5 <> '', $6, $7, $8, $9,
                    CASE WHEN $9 THEN 'PROCESSING' ELSE 'PENDING' END,
                    CASE WHEN $9 THEN now() + interval '1 hour' END)
            ON CONFLICT (sha256) DO NOTHING
            RETURNING {DOCUMENT_COLUMNS}
            """,
            new.title, new.filename, sha256, len(content),
            new.language, new.document_type, new.tags, new.title_is_filename, new.seeded,
        )  # fmt: skip
        if row is not None:
            await _copy_content(conn, row["id"], content)
            return DocumentRecord.from_row(row), False
        if not overwrite:
            existing = await conn.fetchrow(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE sha256 = $1", sha256
            )
            return DocumentRecord.from_row(existing), True
        row = await conn.fetchrow(
            f"""
            UPDATE documents
            SET title = $2, filename = $3, language = $4, language_given = $4 <> '',
                document_type = $5, tags = $6,
                title_is_filename = $7, status = 'PENDING', error = '', warnings = '{{}}',
                attempts = 0, chunks_done = 0, chunks_total = 0, lease_expires_at = NULL,
                updated_at = now()
            WHERE sha256 = $1
            RETURNING {DOCUMENT_COLUMNS}
            """,
            sha256, new.title, new.filename, new.language, new.document_type, new.tags,
            new.title_is_filename,
        )  # fmt: skip
        return DocumentRecord.from_row(row), True


async def documents_of_other_models(pool: asyncpg.Pool, embedding_model: str) -> dict[str, int]:
    """READY documents embedded with another model than `embedding_model`, counted by model:
    vector search leaves them out until they are processed again."""
    rows = await pool.fetch(
        """
        SELECT embedding_model, count(*) FROM documents
        WHERE status = 'READY' AND chunk_count > 0 AND embedding_model <> $1
        GROUP BY embedding_model ORDER BY embedding_model
        """,
        embedding_model,
    )
    return {row[0]: row[1] for row in rows}


async def get_document(pool: asyncpg.Pool, document_id: UUID) -> DocumentRecord | None:
    row = await pool.fetchrow(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1", document_id
    )
    return DocumentRecord.from_row(row) if row is not None else None


async def list_documents(
    pool: asyncpg.Pool,
    where: DocumentFilter,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> tuple[list[DocumentRecord], int]:
    """One page of documents, newest first, and how many match in all."""
    filters = """
        ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR language = $2)
        AND ($3::text IS NULL OR document_type = $3) AND ($4::text IS NULL OR $4 = ANY (tags))
    """
    arguments = (where.status, where.language, where.document_type, where.tag)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""
            SELECT {DOCUMENT_COLUMNS} FROM documents
            WHERE {filters}
              AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
            ORDER BY created_at DESC, id DESC
            LIMIT $7
            """,
            *arguments, *(after or (None, None)), limit,
        )  # fmt: skip
        total = await conn.fetchval(f"SELECT count(*) FROM documents WHERE {filters}", *arguments)
    return [DocumentRecord.from_row(row) for row in rows], int(total)


async def delete_document(pool: asyncpg.Pool, document_id: UUID) -> bool:
    """Deletes the document with its bytes and chunks; False when there was none."""
    deleted = await pool.fetchval("DELETE FROM documents WHERE id = $1 RETURNING id", document_id)
    return deleted is not None


async def requeue_document(pool: asyncpg.Pool, document_id: UUID) -> DocumentRecord | None:
    """Queues a document that is not being processed; None when it is, or does not exist."""
    row = await pool.fetchrow(
        f"""
        UPDATE documents
        SET status = 'PENDING', error = '', attempts = 0, chunks_done = 0, chunks_total = 0,
            lease_expires_at = NULL, updated_at = now()
        WHERE id = $1 AND status <> 'PROCESSING'
        RETURNING {DOCUMENT_COLUMNS}
        """,
        document_id,
    )
    return DocumentRecord.from_row(row) if row is not None else None


async def requeue_all(pool: asyncpg.Pool, status: str | None) -> int:
    """Queues every READY and FAILED document (or only those in `status`)."""
    result = await pool.execute(
        """
        UPDATE documents
        SET status = 'PENDING', error = '', attempts = 0, chunks_done = 0, chunks_total = 0,
            lease_expires_at = NULL, updated_at = now()
        WHERE status IN ('READY', 'FAILED') AND ($1::text IS NULL OR status = $1)
        """,
        status,
    )
    return int(result.split()[-1])


@dataclass(frozen=True)
class Job:
    """A document a worker has leased for processing."""

    document_id: UUID
    attempts: int
    # The language the upload gave; '' when it is to be detected from the text.
    language: str


async def queue_depth(pool: asyncpg.Pool) -> int:
    """Documents waiting for a worker or being processed."""
    depth: int = await pool.fetchval(
        "SELECT count(*) FROM documents WHERE status IN ('PENDING', 'PROCESSING')"
    )
    return depth


async def claim_next_job(pool: asyncpg.Pool, lease_seconds: float) -> Job | None:
    """Leases the oldest PENDING document, or one whose worker's lease ran out."""
    row = await pool.fetchrow(
        """
        UPDATE documents AS d
        SET status = 'PROCESSING', attempts = d.attempts + 1, error = '', warnings = '{}',
            chunks_done = 0, chunks_total = 0, updated_at = now(),
            lease_expires_at = now() + make_interval(secs => $1)
        FROM (
            SELECT id FROM documents
            WHERE status = 'PENDING' OR (status = 'PROCESSING' AND lease_expires_at < now())
            ORDER BY created_at, id
            FOR UPDATE SKIP LOCKED
            LIMIT 1
        ) AS next
        WHERE d.id = next.id
        RETURNING d.id, d.attempts, CASE WHEN d.language_given THEN d.language ELSE '' END
        """,
        lease_seconds,
    )
    return Job(*row) if row is not None else None


async def document_content(pool: asyncpg.Pool, document_id: UUID) -> bytes | None:
    content: bytes | None = await pool.fetchval(
        "SELECT content FROM document_contents WHERE document_id = $1", document_id
    )
    return content


async def record_progress(
    pool: asyncpg.Pool,
    document_id: UUID,
    lease_seconds: float,
    *,
    page_count: int,
    chunks_done: int,
    chunks_total: int,
) -> bool:
    """Saves progress and renews the lease; False when the job was taken away (deleted,
    or requeued by another worker after the lease ran out)."""
    updated = await pool.fetchval(
        """
        UPDATE documents
        SET page_count = $2, chunks_done = $3, chunks_total = $4, updated_at = now(),
            lease_expires_at = now() + make_interval(secs => $5)
        WHERE id = $1 AND status = 'PROCESSING'
        RETURNING id
        """,
        document_id, page_count, chunks_done, chunks_total, lease_seconds,
    )  # fmt: skip
    return updated is not None


async def complete_job(
    pool: asyncpg.Pool,
    document_id: UUID,
    *,
    page_count: int,
    chunks: Sequence[Chunk],
    vectors: npt.NDArray[np.float32],
    section_titles: Sequence[str],
    section_vectors: npt.NDArray[np.float32],
    embedding_model: str,
    language: str,
    search_texts: Sequence[str],
    warnings: list[str],
    metadata_title: str = "",
) -> bool:
    """Replaces the document's chunks and section title embeddings and makes it READY, in
    one transaction, so a document is searchable whole or not at all. False when the job was
    taken away meanwhile. `language` is the document's (as given or detected); each chunk's
    full text is indexed from its `search_texts` entry in that language's configuration."""
    async with pool.acquire() as conn, conn.transaction():
        still_ours = await conn.fetchval(
            "SELECT id FROM documents WHERE id = $1 AND status = 'PROCESSING' FOR UPDATE",
            document_id,
        )
        if still_ours is None:
            return False
        await _delete_chunks(conn, document_id)
        # One statement, so the lexeme statistics trigger runs once per document.
        await conn.execute(
            """
            INSERT INTO chunks (document_id, ordinal, page_number, section_title, content,
                                token_count, text_search_config, content_tsv, embedding_model,
                                embedding)
            SELECT $1, c.ordinal, c.page_number, c.section_title, c.content, c.token_count,
                   $7::regconfig, to_tsvector($7::regconfig, c.search_text), $8,
                   c.embedding::vector
            FROM unnest($2::integer[], $3::integer[], $4::text[], $5::text[], $6::integer[],
                        $9::text[], $10::text[])
                 AS c (ordinal, page_number, section_title, content, token_count, embedding,
                       search_text)
            """,
            document_id,
            [chunk.ordinal for chunk in chunks],
            [chunk.page_number for chunk in chunks],
            [chunk.section_title for chunk in chunks],
            [chunk.text for chunk in chunks],
            [chunk.token_count for chunk in chunks],
            text_search_config(language),
            embedding_model,
            # asyncpg would read each numpy vector as a nested array: send pgvector's text form.
            [vector_text(vector) for vector in vectors] if len(chunks) else [],
            list(search_texts),
        )  # fmt: skip
        await conn.execute(
            """
            INSERT INTO section_embeddings (document_id, title, embedding_model, embedding)
            SELECT $1, s.title, $3, s.embedding::vector
            FROM unnest($2::text[], $4::text[]) AS s (title, embedding)
            """,
            document_id, list(section_titles), embedding_model,
            [vector_text(vector) for vector in section_vectors],
        )  # fmt: skip
        await conn.execute(
            """
            UPDATE documents
            SET status = 'READY', page_count = $2, chunk_count = $3, chunks_done = $3,
                chunks_total = $3, warnings = $4, embedding_model = $5,
                embedding_dimensions = $6, processed_at = now(), updated_at = now(),
                lease_expires_at = NULL,
                title = CASE WHEN title_is_filename AND $7 <> '' THEN $7 ELSE title END,
                title_is_filename = title_is_filename AND $7 = '', language = $8
            WHERE id = $1
            """,
            document_id, page_count, len(chunks), warnings, embedding_model,
            int(vectors.shape[1]) if len(chunks) else 0, metadata_title, language,
        )  # fmt: skip
    return True


async def fail_job(pool: asyncpg.Pool, document_id: UUID, reason: str) -> None:
    """Marks a document FAILED with a reason a person can act on; its old chunks go."""
    async with pool.acquire() as conn, conn.transaction():
        await _delete_chunks(conn, document_id)
        await conn.execute(
            """
            UPDATE documents
            SET status = 'FAILED', error = $2, chunk_count = 0, processed_at = now(),
                updated_at = now(), lease_expires_at = NULL
            WHERE id = $1
            """,
            document_id,
            reason,
        )


async def _delete_chunks(conn: asyncpg.Connection, document_id: UUID) -> None:
    await conn.execute("DELETE FROM chunks WHERE document_id = $1", document_id)
    await conn.execute("DELETE FROM section_embeddings WHERE document_id = $1", document_id)
