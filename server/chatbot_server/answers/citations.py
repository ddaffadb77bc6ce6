"""Citation markers: the model cites sources as "[n]"; callers see them renumbered by first use.

The prompt numbers the retrieved sources 1..k. The answer is rewritten as it streams so that
the first source cited becomes [1], the next new one [2], and so on; the citations event lists
exactly those sources in that order, so each marker in the text points at its own citation.
Markers naming no source are removed rather than left pointing at nothing.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

# How much of a cited chunk a citation carries.
CITATION_TEXT_LIMIT = 500

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# A tail that may still grow into a marker ("[", "[1", "[1, 2").
_PARTIAL = re.compile(r"\[[\d,\s]{0,20}$")


class CitationRenumberer:
    """Feed answer text as it streams; get back text safe to show, with markers renumbered."""

    def __init__(self, source_count: int) -> None:
        self._source_count = source_count
        self._held = ""
        self.cited_sources: list[int] = []

    def feed(self, text: str) -> str:
        text = self._held + text
        partial = _PARTIAL.search(text)
        cut = partial.start() if partial else len(text)
        self._held = text[cut:]
        return self._rewrite(text[:cut])

    def flush(self) -> str:
        """The rest of the text at the end of the answer."""
        text, self._held = self._held, ""
        return self._rewrite(text)

    def _rewrite(self, text: str) -> str:
        return _MARKER.sub(self._renumber, text)

    def _renumber(self, match: re.Match[str]) -> str:
        numbers = []
        for raw in match.group(1).split(","):
            source = int(raw)
            if not 1 <= source <= self._source_count:
                continue
            if source not in self.cited_sources:
                self.cited_sources.append(source)
            number = self.cited_sources.index(source) + 1
            if number not in numbers:
                numbers.append(number)
        return "".join(f"[{number}]" for number in numbers)


def stored_citation(
    number: int,
    *,
    document_id: UUID,
    document_title: str,
    chunk_id: UUID,
    page_number: int,
    section_title: str,
    chunk_text: str,
    relevance_score: float,
) -> dict[str, Any]:
    """A citation as messages store it (JSON) and `common.Citation` returns it."""
    return {
        "number": number,
        "document_id": str(document_id),
        "document_title": document_title,
        "chunk_id": str(chunk_id),
        "page_number": page_number,
        "section_title": section_title,
        "chunk_text": chunk_text[:CITATION_TEXT_LIMIT],
        "relevance_score": relevance_score,
    }
