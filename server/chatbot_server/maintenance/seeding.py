"""`chatbot-server seed`: sample documents and conversations, marked so they can be removed.

Documents go through the same store and embedding model as uploads (their chunks are made
here, so the counts are exact); conversations cite the seeded chunks as real answers do.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from chatbot_server.answers import chat_store
from chatbot_server.answers.citations import stored_citation
from chatbot_server.answers.grounding import QUOTES_INTRO, localized
from chatbot_server.documents import document_store
from chatbot_server.documents.chunking import section_titles
from chatbot_server.documents.document_store import NewDocument
from chatbot_server.maintenance.seed_content import seed_manual, seed_question
from chatbot_server.retrieval.embeddings import Embedder, embed_in_batches
from chatbot_server.retrieval.languages import search_texts

# The identity of local calls without an API key, so `chatbot conversations list` on the
# server's machine shows the seeded conversations.
SEED_OWNER = "ip:127.0.0.1"
SEED_TAG = "seed"
EMBED_BATCH = 64


@dataclass(frozen=True)
class SeedSize:
    documents: int
    chunks: int
    conversations: int


SIZES = {
    "small": SeedSize(documents=5, chunks=250, conversations=20),
    "medium": SeedSize(documents=20, chunks=2_000, conversations=100),
    "large": SeedSize(documents=50, chunks=10_000, conversations=500),
}


class SeedError(RuntimeError):
    """The seed cannot be made as asked; the message says why."""


async def clear_seeded(pool: asyncpg.Pool) -> tuple[int, int]:
    """Removes seeded documents (with their chunks) and conversations (with their
    messages); returns how many of each."""
    async with pool.acquire() as conn, conn.transaction():
        conversations = await conn.fetchval(
            "WITH gone AS (DELETE FROM conversations WHERE seeded RETURNING 1) "
            "SELECT count(*) FROM gone"
        )
        documents = await conn.fetchval(
            "WITH gone AS (DELETE FROM documents WHERE seeded RETURNING 1) "
            "SELECT count(*) FROM gone"
        )
    return int(documents), int(conversations)


async def seed_documents(
    pool: asyncpg.Pool, embedder: Embedder, size: SeedSize, progress: Callable[[str], None]
) -> None:
    """`size.documents` manuals holding `size.chunks` chunks in all, READY to search."""
    first = await pool.fetchval("SELECT count(*) FROM documents WHERE seeded")
    per_document, extra = divmod(size.chunks, size.documents)
    for index in range(size.documents):
        manual = seed_manual(first + index, per_document + (1 if index < extra else 0))
        record, existed = await document_store.insert_document(
            pool,
            NewDocument(
                title=manual.title,
                filename=manual.filename,
                language="en",
                document_type="manual",
                tags=[SEED_TAG],
                seeded=True,
            ),
            manual.pdf,
            hashlib.sha256(manual.pdf).hexdigest(),
            overwrite=False,
        )
        if existed:
            raise SeedError(f"{manual.filename} is stored already; use --clear to seed anew")
        texts = [chunk.text for chunk in manual.chunks]
        titles = section_titles(manual.chunks)
        await document_store.complete_job(
            pool,
            record.id,
            page_count=manual.page_count,
            chunks=manual.chunks,
            vectors=await embed_in_batches(embedder, texts, EMBED_BATCH),
            section_titles=titles,
            section_vectors=await embed_in_batches(embedder, titles, EMBED_BATCH),
            embedding_model=embedder.model_name,
            language="en",
            search_texts=search_texts(texts, "en"),
            warnings=[],
        )
        progress(f"documents {index + 1}/{size.documents}")


async def seed_conversations(
    pool: asyncpg.Pool, size: SeedSize, progress: Callable[[str], None]
) -> None:
    """`size.conversations` conversations of a question and an answer citing seeded chunks."""
    rows = await pool.fetch(
        """
        SELECT c.id, c.document_id, d.title, c.page_number, c.section_title, c.content
        FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE d.seeded ORDER BY d.created_at, c.ordinal
        """
    )
    if not rows:
        raise SeedError("no seeded documents to cite; seed documents first")
    generator = random.Random(len(rows))
    for number in range(size.conversations):
        first = generator.randrange(len(rows))
        cited = [rows[first]] + [
            row
            for row in rows[first + 1 : first + 3]
            if row["document_id"] == rows[first]["document_id"]
        ]
        question = seed_question(generator, cited[0]["title"], cited[0]["section_title"])
        conversation = await chat_store.create_conversation(
            pool, SEED_OWNER, "", question, seeded=True
        )
        await chat_store.insert_message(pool, conversation.id, "user", question)
        quotes = [f"{row['content'].split('. ')[0]}. [{n}]" for n, row in enumerate(cited, 1)]
        await chat_store.insert_message(
            pool,
            conversation.id,
            "assistant",
            localized(QUOTES_INTRO, "en") + "\n\n" + "\n\n".join(quotes),
            citations=[_citation(n, row) for n, row in enumerate(cited, 1)],
        )
        if (number + 1) % 20 == 0 or number + 1 == size.conversations:
            progress(f"conversations {number + 1}/{size.conversations}")


def _citation(number: int, row: asyncpg.Record) -> dict[str, object]:
    return stored_citation(
        number,
        document_id=row["document_id"],
        document_title=row["title"],
        chunk_id=row["id"],
        page_number=row["page_number"],
        section_title=row["section_title"],
        chunk_text=row["content"],
        relevance_score=1.0,
    )
