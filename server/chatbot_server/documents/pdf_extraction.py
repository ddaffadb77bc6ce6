"""Text of a PDF, page by page, with the section each paragraph belongs to.

Section titles come from the PDF's outline when it has one; otherwise from type size: a
short line set clearly larger than the document's body text (or a bold line standing alone)
starts a section. CPU-bound: run it off the event loop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pymupdf

from chatbot_server.documents.chunking import TextBlock, normalize_text

# MuPDF's own complaints about damaged files would go to stderr; errors are reported instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

PDF_MAGIC = b"%PDF-"
_HEADING_SIZE_RATIO = 1.15
_HEADING_MAX_CHARS = 120
_BOLD = 16


class UnreadableDocumentError(Exception):
    """The bytes cannot be turned into text; the message says why in a person's words."""


@dataclass(frozen=True)
class ExtractedDocument:
    page_count: int
    blocks: list[TextBlock]
    warnings: list[str] = field(default_factory=list)


def extract_document(data: bytes, max_pages: int) -> ExtractedDocument:
    """Paragraphs of every page in reading order, each with its page number and section.
    A PDF of more than `max_pages` pages is refused before any page is read."""
    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except (pymupdf.FileDataError, RuntimeError, ValueError) as error:
        raise UnreadableDocumentError(f"the file is not a readable PDF ({error})") from None
    with document:
        try:
            blocks, page_count = _read(document, max_pages)
        except (RuntimeError, ValueError, IndexError) as error:
            # PyMuPDF reports a damaged structure (a page tree whose count lies, a broken
            # object) from whichever call first meets it.
            raise UnreadableDocumentError(f"the PDF is damaged ({error})") from None
    pages_with_text = {block.page_number for block in blocks}
    if not pages_with_text:
        raise UnreadableDocumentError(
            "no extractable text: the PDF seems to hold only images (a scan?); "
            "run OCR on it and upload the result"
        )
    warnings = []
    empty = [n for n in range(1, page_count + 1) if n not in pages_with_text]
    if empty:
        listed = ", ".join(map(str, empty[:20])) + (" …" if len(empty) > 20 else "")
        warnings.append(f"{len(empty)} of {page_count} pages have no extractable text: {listed}")
    return ExtractedDocument(page_count=page_count, blocks=blocks, warnings=warnings)


def _read(document: pymupdf.Document, max_pages: int) -> tuple[list[TextBlock], int]:
    if document.needs_pass:
        raise UnreadableDocumentError(
            "the PDF is password-protected; upload a copy without a password"
        )
    if document.page_count == 0:
        raise UnreadableDocumentError("the PDF has no pages")
    if document.page_count > max_pages:
        raise UnreadableDocumentError(
            f"the PDF has {document.page_count:,} pages; documents of at most "
            f"{max_pages:,} pages are processed (MAX_DOCUMENT_PAGES); split it and upload "
            "the parts"
        )
    outline = [(title.strip(), page) for _, title, page in document.get_toc() if title]
    blocks = _blocks_by_outline(document, outline) if outline else _blocks_by_type_size(document)
    return blocks, document.page_count


def _blocks_by_outline(
    document: pymupdf.Document, outline: list[tuple[str, int]]
) -> list[TextBlock]:
    """Sections from the outline: a section starts at the paragraph that begins with its title
    on its page, or at the top of that page when no paragraph does."""
    blocks: list[TextBlock] = []
    section = ""
    for page in document:
        number = page.number + 1
        pending = [title for title, target in outline if target == number]
        for *_, raw_text, _, block_type in page.get_text("blocks"):
            text = normalize_text(raw_text)
            if block_type != 0 or not text:
                continue
            while pending and text.casefold().startswith(pending[0].casefold()):
                section = pending.pop(0)
            blocks.append(TextBlock(number, section, text))
        if pending:
            section = pending[-1]
    return blocks


def _blocks_by_type_size(document: pymupdf.Document) -> list[TextBlock]:
    pages = [(page.number + 1, _paragraphs(page)) for page in document]
    body_size = _body_size(paragraph for _, paragraphs in pages for paragraph in paragraphs)
    blocks: list[TextBlock] = []
    section = ""
    for number, paragraphs in pages:
        for paragraph in paragraphs:
            if _is_heading(paragraph, body_size):
                section = paragraph.text
            blocks.append(TextBlock(number, section, paragraph.text))
    return blocks


@dataclass(frozen=True)
class _Paragraph:
    text: str
    size: float
    bold: bool
    lines: int


def _paragraphs(page: pymupdf.Page) -> list[_Paragraph]:
    paragraphs = []
    for block in page.get_text("dict")["blocks"]:
        spans: list[dict[str, Any]] = [
            span for line in block.get("lines", ()) for span in line["spans"] if span["text"]
        ]
        text = normalize_text(" ".join(span["text"] for span in spans))
        if not text:
            continue
        weights: Counter[float] = Counter()
        for span in spans:
            weights[round(span["size"], 1)] += len(span["text"])
        paragraphs.append(
            _Paragraph(
                text=text,
                size=weights.most_common(1)[0][0],
                bold=all(span["flags"] & _BOLD for span in spans),
                lines=len(block.get("lines", ())),
            )
        )
    return paragraphs


def _body_size(paragraphs: Any) -> float:
    weights: Counter[float] = Counter()
    for paragraph in paragraphs:
        weights[paragraph.size] += len(paragraph.text)
    return weights.most_common(1)[0][0] if weights else 0.0


def _is_heading(paragraph: _Paragraph, body_size: float) -> bool:
    if len(paragraph.text) > _HEADING_MAX_CHARS or paragraph.lines > 2:
        return False
    if paragraph.size >= body_size * _HEADING_SIZE_RATIO:
        return True
    return paragraph.bold and paragraph.lines == 1 and not paragraph.text.endswith(".")
