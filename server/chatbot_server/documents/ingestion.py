"""The ingestion worker: claims queued documents from PostgreSQL and makes them searchable.

The queue is the `documents` table itself (PENDING rows, leased with FOR UPDATE SKIP LOCKED),
so any number of workers in any number of processes share it, and a restart loses nothing:
a document whose worker died is taken over when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import asyncpg
import structlog

from chatbot_server.config import IngestionSettings
from chatbot_server.documents import document_preparation, document_store
from chatbot_server.documents.chunking import ChunkingPolicy, section_titles
from chatbot_server.documents.document_preparation import (
    PreparedDocument,
    bind_to_parent,
    prepare_document,
)
from chatbot_server.documents.pdf_extraction import UnreadableDocumentError
from chatbot_server.platform import metrics
from chatbot_server.platform.database import DATABASE_ERRORS, UNREACHABLE_ERRORS
from chatbot_server.platform.tracing import tracer
from chatbot_server.retrieval.embeddings import (
    Embedder,
    EmbeddingError,
    embed_in_batches,
    stacked,
)

log = structlog.get_logger(__name__)

# Texts per embedding call; progress is saved after each.
EMBED_GROUP_SIZE = 16


class IngestionWorker:
    """Processes one document at a time until cancelled."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        settings: IngestionSettings,
        policy: ChunkingPolicy,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._settings = settings
        self._policy = policy
        self._wakeup = asyncio.Event()
        self._executor: ProcessPoolExecutor | None = None

    def wake(self) -> None:
        """Look for work now rather than at the next poll (a document was just queued)."""
        self._wakeup.set()

    async def run(self) -> None:
        try:
            await self._warm_up()
            while True:
                if not await self.process_next():
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._settings.poll_seconds)
        finally:
            self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def process_next(self) -> bool:
        """Processes the next queued document; False when the queue was empty."""
        try:
            metrics.INGESTION_QUEUE_DEPTH.set(await document_store.queue_depth(self._pool))
            job = await document_store.claim_next_job(self._pool, self._settings.lease_seconds)
        except DATABASE_ERRORS as error:
            log.warning("ingestion.queue_unreachable", error=str(error))
            return False
        if job is None:
            return False
        with (
            structlog.contextvars.bound_contextvars(document_id=str(job.document_id)),
            tracer.start_as_current_span(
                "ingestion.document", attributes={"document.id": str(job.document_id)}
            ),
        ):
            await self._process(job)
        return True

    async def _process(self, job: document_store.Job) -> None:
        started = time.perf_counter()
        if job.attempts > self._settings.max_attempts:
            await self._fail(
                job,
                f"processing was interrupted {job.attempts - 1} times (the worker stopped "
                "or crashed); reprocess the document to try again",
            )
            return
        try:
            content = await document_store.document_content(self._pool, job.document_id)
            if content is None:
                return
            with tracer.start_as_current_span("ingestion.extract"):
                prepared = await self._prepare(job, content)
            with tracer.start_as_current_span(
                "ingestion.embed_and_store", attributes={"chunks": len(prepared.chunks)}
            ):
                stored = await self._embed_and_store(job, prepared)
            if not stored:
                log.info("document.abandoned", reason="deleted or requeued while processing")
                return
        except UnreadableDocumentError as error:
            await self._fail(job, str(error))
            return
        except BrokenProcessPool:
            self.close()
            await self._fail(job, "the PDF crashed the text extractor; it is likely damaged")
            return
        except EmbeddingError as error:
            await self._fail(job, f"embedding failed: {error}; reprocess to try again")
            return
        except UNREACHABLE_ERRORS as error:
            # The lease runs out and the document is taken up again; nothing is lost.
            log.warning("document.interrupted", error=str(error))
            return
        except Exception as error:
            log.error("document.processing_error", exc_info=error)
            await self._fail(job, f"internal error while processing ({type(error).__name__})")
            return
        metrics.DOCUMENTS_PROCESSED.labels("ready").inc()
        metrics.PAGES_PROCESSED.inc(prepared.page_count)
        metrics.CHUNKS_PROCESSED.inc(len(prepared.chunks))
        log.info(
            "document.ingested",
            pages=prepared.page_count,
            chunks=len(prepared.chunks),
            ms=round((time.perf_counter() - started) * 1000),
        )

    async def _warm_up(self) -> None:
        """Starts the extraction process and loads the model before the first document."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._extraction_process(), document_preparation.warm_up)
        except BrokenProcessPool:
            # It died starting: a terminal's Ctrl-C reaches the whole process group. The next
            # document starts another.
            self.close()
            log.warning("ingestion.extraction_process_died", stage="warm-up")
        await self._embedder.warm_up()

    def _extraction_process(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the parent holds gRPC and database threads.
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=bind_to_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def _prepare(self, job: document_store.Job, content: bytes) -> PreparedDocument:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._extraction_process(),
            prepare_document,
            content,
            self._policy,
            self._settings.max_document_pages,
            job.language,
        )

    async def _embed_and_store(self, job: document_store.Job, prepared: PreparedDocument) -> bool:
        texts = [chunk.text for chunk in prepared.chunks]
        group = EMBED_GROUP_SIZE
        vectors = []
        for done in range(0, len(texts) + 1, group):
            if not await document_store.record_progress(
                self._pool,
                job.document_id,
                self._settings.lease_seconds,
                page_count=prepared.page_count,
                chunks_done=done,
                chunks_total=len(texts),
            ):
                return False
            if done < len(texts):
                vectors.append(await self._embedder.embed(texts[done : done + group]))
        titles = section_titles(prepared.chunks)
        title_vectors = await embed_in_batches(self._embedder, titles, EMBED_GROUP_SIZE)
        return await document_store.complete_job(
            self._pool,
            job.document_id,
            page_count=prepared.page_count,
            chunks=prepared.chunks,
            vectors=stacked(vectors),
            section_titles=titles,
            section_vectors=title_vectors,
            embedding_model=self._embedder.model_name,
            language=prepared.language,
            search_texts=prepared.search_texts,
            warnings=prepared.warnings,
            metadata_title=prepared.title,
        )

    async def _fail(self, job: document_store.Job, reason: str) -> None:
        log.warning("document.failed", reason=reason)
        metrics.DOCUMENTS_PROCESSED.labels("failed").inc()
        await document_store.fail_job(self._pool, job.document_id, reason)
