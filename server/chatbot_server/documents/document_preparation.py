"""Bytes to chunks: extraction and chunking, run in a worker process.

A separate process keeps this CPU-bound work (and any crash of the PDF library on a hostile
file) away from the server's event loop.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

from chatbot_server.documents.chunking import Chunk, ChunkingPolicy, chunk_blocks
from chatbot_server.documents.pdf_extraction import extract_document
from chatbot_server.retrieval import languages
from chatbot_server.retrieval.local_model import count_tokens


@dataclass(frozen=True)
class PreparedDocument:
    page_count: int
    chunks: list[Chunk]
    warnings: list[str]
    title: str
    language: str
    # Each chunk's text as full-text search indexes it (`retrieval.languages`).
    search_texts: list[str]


def warm_up() -> None:
    """Loads what preparing the first document would: the tokenizer and the language models."""
    count_tokens("warm up")
    languages.warm_up()


def prepare_document(
    data: bytes, policy: ChunkingPolicy, max_pages: int, language: str
) -> PreparedDocument:
    """Raises UnreadableDocumentError with a reason for a person when there is no text. An
    empty `language` is detected from the text."""
    extracted = extract_document(data, max_pages)
    chunks = chunk_blocks(extracted.blocks, policy, count_tokens)
    texts = [chunk.text for chunk in chunks]
    language = language or languages.detect_document_language(texts) or languages.DEFAULT_LANGUAGE
    return PreparedDocument(
        page_count=extracted.page_count,
        chunks=chunks,
        warnings=extracted.warnings,
        title=extracted.title,
        language=language,
        search_texts=languages.search_texts(texts, language),
    )


def bind_to_parent(parent_pid: int) -> None:
    """Worker-process initializer: die with the server process, even when it is killed
    outright, instead of lingering as an orphan (Linux; elsewhere a no-op). Ctrl-C, which a
    terminal sends to the whole process group, is left to the server, which stops this
    process with the pool; here it would only print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform != "linux":
        return
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG
    ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)
