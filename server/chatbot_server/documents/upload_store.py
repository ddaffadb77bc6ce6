"""Resumable uploads in PostgreSQL: the upload's row and its pieces, in order of offset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from uuid import UUID

import asyncpg

from chatbot_server.documents.upload_memory import UploadBuffer

_COLUMNS = (
    "id, owner, metadata, size_bytes, sha256, received_bytes, expires_at, "
    "committed, document_id, deduplicated"
)


@dataclass(frozen=True)
class UploadRecord:
    id: UUID
    owner: str
    # The UploadMetadata message, serialized.
    metadata: bytes
    size_bytes: int
    sha256: str
    received_bytes: int
    expires_at: datetime
    committed: bool
    # The stored document, once committed (None if it was deleted since).
    document_id: UUID | None
    deduplicated: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> UploadRecord:
        return cls(**dict(row.items()))


class AppendResult(Enum):
    APPENDED = "appended"
    # Every byte of the piece had arrived before: nothing changed.
    ALREADY_RECEIVED = "already_received"
    # The piece starts past the bytes received; the caller missed one.
    GAP = "gap"
    # The piece would go past the size declared at the start.
    PAST_END = "past_end"


async def begin_upload(
    pool: asyncpg.Pool,
    owner: str,
    metadata: bytes,
    size_bytes: int,
    sha256: str,
    lifetime_seconds: float,
) -> UploadRecord:
    row = await pool.fetchrow(
        f"""
        INSERT INTO uploads (owner, metadata, size_bytes, sha256, expires_at)
        VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
        RETURNING {_COLUMNS}
        """,
        owner, metadata, size_bytes, sha256, lifetime_seconds,
    )  # fmt: skip
    return UploadRecord.from_row(row)


async def open_uploads(pool: asyncpg.Pool, owner: str) -> int:
    """Uploads of `owner` that have neither been committed nor expired."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM uploads WHERE owner = $1 AND NOT committed AND expires_at > now()",
        owner,
    )
    return count


async def get_upload(pool: asyncpg.Pool, upload_id: UUID, owner: str) -> UploadRecord | None:
    """The upload, if it belongs to `owner` and has not expired."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM uploads WHERE id = $1 AND owner = $2 AND expires_at > now()",
        upload_id,
        owner,
    )
    return UploadRecord.from_row(row) if row is not None else None


async def append_piece(
    pool: asyncpg.Pool,
    upload_id: UUID,
    owner: str,
    offset: int,
    data: bytes,
    lifetime_seconds: float,
) -> tuple[AppendResult, UploadRecord] | None:
    """Adds the part of `data` not received yet, and keeps the upload alive for another
    `lifetime_seconds`; None when there is no such upload (or it expired)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""
            SELECT {_COLUMNS} FROM uploads
            WHERE id = $1 AND owner = $2 AND expires_at > now()
            FOR UPDATE
            """,
            upload_id,
            owner,
        )
        if row is None:
            return None
        upload = UploadRecord.from_row(row)
        if upload.committed:
            return AppendResult.ALREADY_RECEIVED, upload
        received = upload.received_bytes
        if offset > received:
            return AppendResult.GAP, upload
        if offset + len(data) <= received:
            return AppendResult.ALREADY_RECEIVED, upload
        new = data[received - offset :]
        if received + len(new) > upload.size_bytes:
            return AppendResult.PAST_END, upload
        await conn.execute(
            'INSERT INTO upload_pieces (upload_id, "offset", data) VALUES ($1, $2, $3)',
            upload_id,
            received,
            new,
        )
        row = await conn.fetchrow(
            f"""
            UPDATE uploads
            SET received_bytes = received_bytes + $2,
                expires_at = now() + make_interval(secs => $3)
            WHERE id = $1
            RETURNING {_COLUMNS}
            """,
            upload_id,
            len(new),
            lifetime_seconds,
        )
        return AppendResult.APPENDED, UploadRecord.from_row(row)


async def upload_content(pool: asyncpg.Pool, upload_id: UUID, size: int) -> tuple[bytearray, str]:
    """The pieces (`size` bytes) in order in one buffer, and their SHA-256, hashed piece by
    piece."""
    buffer = UploadBuffer(size)
    digest = hashlib.sha256()
    async with pool.acquire() as conn, conn.transaction():
        async for record in conn.cursor(
            'SELECT data FROM upload_pieces WHERE upload_id = $1 ORDER BY "offset"', upload_id
        ):
            digest.update(record["data"])
            buffer.append(record["data"])
    return buffer.content(), digest.hexdigest()


async def mark_committed(
    pool: asyncpg.Pool, upload_id: UUID, document_id: UUID, deduplicated: bool
) -> None:
    """Records the document the upload became and lets its pieces go."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM upload_pieces WHERE upload_id = $1", upload_id)
        await conn.execute(
            "UPDATE uploads SET committed = true, document_id = $2, deduplicated = $3"
            " WHERE id = $1",
            upload_id,
            document_id,
            deduplicated,
        )


async def delete_upload(pool: asyncpg.Pool, upload_id: UUID) -> None:
    await pool.execute("DELETE FROM uploads WHERE id = $1", upload_id)


async def delete_expired(pool: asyncpg.Pool) -> int:
    """Removes abandoned uploads and their pieces; how many went."""
    status = await pool.execute("DELETE FROM uploads WHERE expires_at <= now()")
    return int(status.split()[-1])
