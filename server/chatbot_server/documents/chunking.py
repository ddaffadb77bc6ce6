"""Splitting extracted text into overlapping chunks that keep their page and section.

Pure functions: text in, chunks out. A chunk never spans two pages or two sections, so a
citation's page and section are exact. Within one page and section, chunks are at most
`size_chars` characters and `max_tokens` model tokens (the embedding model silently drops
what is past its limit), end at a paragraph, sentence or word boundary where one is near,
and the next chunk repeats at most `overlap_chars` of the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

TokenCounter = Callable[[str], int]

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*\s")


@dataclass(frozen=True)
class TextBlock:
    """Text of one page under one section title, in reading order."""

    page_number: int
    section_title: str
    text: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document to embed and search."""

    ordinal: int
    page_number: int
    section_title: str
    text: str
    token_count: int


def section_titles(chunks: Sequence[Chunk]) -> list[str]:
    """The distinct section titles the chunks carry, in order, without the empty one."""
    return sorted({chunk.section_title for chunk in chunks} - {""})


@dataclass(frozen=True)
class ChunkingPolicy:
    """How large chunks are and how much consecutive chunks overlap."""

    size_chars: int = 1200
    overlap_chars: int = 200
    max_tokens: int = 254

    def __post_init__(self) -> None:
        if self.size_chars < 2 or not 0 <= self.overlap_chars < self.size_chars:
            raise ValueError("need size_chars >= 2 and 0 <= overlap_chars < size_chars")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be positive")


def normalize_text(text: str) -> str:
    """Paragraphs separated by one blank line, single spaces, no blank or padded lines;
    line breaks inside a paragraph (code) are kept."""
    paragraphs = (
        "\n".join(line for line in (_SPACES.sub(" ", raw).strip() for raw in p.split("\n")) if line)
        for p in _BLANK_LINES.split(text)
    )
    return "\n\n".join(p for p in paragraphs if p)


def chunk_blocks(
    blocks: Iterable[TextBlock], policy: ChunkingPolicy, count_tokens: TokenCounter
) -> list[Chunk]:
    """Chunks of the blocks in order, numbered from 0."""
    chunks: list[Chunk] = []
    for page_number, section_title, text in _merge_blocks(blocks):
        for start, end in split_spans(text, policy, count_tokens):
            piece = text[start:end].strip()
            if piece:
                chunks.append(
                    Chunk(len(chunks), page_number, section_title, piece, count_tokens(piece))
                )
    return chunks


def split_spans(
    text: str, policy: ChunkingPolicy, count_tokens: TokenCounter
) -> list[tuple[int, int]]:
    """[start, end) spans that cover `text`, each within the size and token limits."""
    spans: list[tuple[int, int]] = []
    start = _skip_spaces(text, 0)
    while start < len(text):
        end = _choose_end(text, start, start + policy.size_chars)
        while end - start > 1 and count_tokens(text[start:end]) > policy.max_tokens:
            end = _choose_end(text, start, start + max(1, (end - start) * 3 // 4))
        if spans and end <= spans[-1][1]:
            # The overlap left no room to get further: start where the last chunk ended.
            start = _skip_spaces(text, spans[-1][1])
            continue
        spans.append((start, end))
        if end >= len(text):
            break
        start = _skip_spaces(text, _choose_next_start(text, start, end, policy.overlap_chars))
    return spans


def _merge_blocks(blocks: Iterable[TextBlock]) -> list[tuple[int, str, str]]:
    """Joins consecutive blocks of the same page and section; drops empty ones."""
    merged: list[tuple[int, str, list[str]]] = []
    for block in blocks:
        text = normalize_text(block.text)
        if not text:
            continue
        if merged and merged[-1][:2] == (block.page_number, block.section_title):
            merged[-1][2].append(text)
        else:
            merged.append((block.page_number, block.section_title, [text]))
    return [(page, section, "\n\n".join(parts)) for page, section, parts in merged]


def _choose_end(text: str, start: int, limit: int) -> int:
    """The best place to end a chunk starting at `start` no later than `limit`."""
    if limit >= len(text):
        return len(text)
    earliest = start + (limit - start) // 2
    window = text[earliest:limit]
    paragraph = window.rfind("\n\n")
    if paragraph > 0:
        return earliest + paragraph
    sentence_ends = [match.end() - 1 for match in _SENTENCE_END.finditer(window)]
    if sentence_ends:
        return earliest + sentence_ends[-1]
    space = window.rfind(" ")
    if space > 0:
        return earliest + space
    return limit


def _choose_next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the next chunk starts: a sentence or word start within the overlap, else `end`."""
    lowest = max(end - overlap, start + 1)
    window = text[lowest:end]
    sentence = _SENTENCE_END.search(window)
    if sentence is not None:
        return lowest + sentence.end()
    space = window.find(" ")
    if space >= 0:
        return lowest + space + 1
    return end


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
