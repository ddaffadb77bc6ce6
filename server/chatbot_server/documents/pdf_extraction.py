"""Text of a PDF, page by page, with the section each paragraph belongs to.

Lines are read with their position and font, cleaned (`page_cleaning`: running headers and
footers, hyphenation, unmapped glyphs), and grouped into paragraphs. Section titles come
from the PDF's outline when it has one, each placed where its text appears on its page
(titles may span lines, several may share a page); otherwise from type size: a short line
set clearly larger than the body text (or a bold line standing alone) starts a section.
CPU-bound: run it off the event loop.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pymupdf

from chatbot_server.documents.chunking import TextBlock
from chatbot_server.documents.page_cleaning import (
    Line,
    clean_glyphs,
    hyphenated_words,
    join_lines,
    remove_navigation,
    remove_running_lines,
)

# MuPDF's own complaints about damaged files would go to stderr; errors are reported instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

PDF_MAGIC = b"%PDF-"
_HEADING_SIZE_RATIO = 1.15
_HEADING_MAX_CHARS = 120
_BOLD = 16
_MONOSPACED = 8
_TEXT_ONLY = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
# Metadata titles that name a file or a tool rather than the document.
_PLACEHOLDER_TITLE = re.compile(
    r"(untitled.*|.*\.(pdf|docx?|odt|tex|dvi|ps|rtf|txt|indd)|microsoft word - .*)",
    re.IGNORECASE,
)


class UnreadableDocumentError(Exception):
    """The bytes cannot be turned into text; the message says why in a person's words."""


@dataclass(frozen=True)
class ExtractedDocument:
    page_count: int
    blocks: list[TextBlock]
    warnings: list[str] = field(default_factory=list)
    # The title in the PDF's metadata; empty when it has none worth showing.
    title: str = ""


def extract_document(data: bytes, max_pages: int) -> ExtractedDocument:
    """Paragraphs of every page in reading order, each with its page number and section.
    A PDF of more than `max_pages` pages is refused before any page is read."""
    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except (pymupdf.FileDataError, RuntimeError, ValueError) as error:
        raise UnreadableDocumentError(f"the file is not a readable PDF ({error})") from None
    with document:
        try:
            blocks, pages_with_text = _read(document, max_pages)
            page_count = document.page_count
            title = _metadata_title(document)
        except (RuntimeError, ValueError, IndexError) as error:
            # PyMuPDF reports a damaged structure (a page tree whose count lies, a broken
            # object) from whichever call first meets it.
            raise UnreadableDocumentError(f"the PDF is damaged ({error})") from None
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
    return ExtractedDocument(page_count, blocks, warnings, title)


def _read(document: pymupdf.Document, max_pages: int) -> tuple[list[TextBlock], set[int]]:
    """The paragraphs, and the numbers of the pages that hold any text."""
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
    raw = [_lines(page) for page in document]
    pages = remove_navigation(remove_running_lines(raw))
    outline = [(clean_glyphs(title), page) for _, title, page in document.get_toc() if title]
    starts = _outline_starts(pages, outline) if outline else _type_size_starts(pages)
    return _paragraphs(pages, starts), {n for n, lines in enumerate(raw, start=1) if lines}


def _metadata_title(document: pymupdf.Document) -> str:
    title = clean_glyphs((document.metadata or {}).get("title") or "")
    return "" if _PLACEHOLDER_TITLE.fullmatch(title) else title[:500]


def _lines(page: pymupdf.Page) -> list[Line]:
    lines = []
    height = page.rect.height
    for block_number, block in enumerate(page.get_text("dict", flags=_TEXT_ONLY)["blocks"]):
        for raw in block.get("lines", ()):
            spans = [span for span in raw["spans"] if span["text"].strip()]
            text = clean_glyphs("".join(span["text"] for span in raw["spans"]))
            if not spans or not text:
                continue
            longest = max(spans, key=lambda span: len(span["text"]))
            lines.append(
                Line(
                    page_number=page.number + 1,
                    block=block_number,
                    text=text,
                    top=raw["bbox"][1],
                    bottom=raw["bbox"][3],
                    page_height=height,
                    size=round(longest["size"], 1),
                    bold=all(span["flags"] & _BOLD for span in spans),
                    monospaced=all(span["flags"] & _MONOSPACED for span in spans),
                )
            )
    return lines


# Where sections start: (page index, line index) -> title.
_Starts = dict[tuple[int, int], str]


def _outline_starts(pages: Sequence[Sequence[Line]], outline: list[tuple[str, int]]) -> _Starts:
    """Each outline title starts its section at the line where its text begins on its
    target page (matched across line breaks, ignoring case and punctuation), searching on
    from the previous title's place; a title not found starts at that place."""
    titles_by_page: dict[int, list[str]] = defaultdict(list)
    for title, page_number in outline:
        titles_by_page[page_number].append(title)
    starts: _Starts = {}
    for index, lines in enumerate(pages):
        titles = titles_by_page.get(index + 1)
        if not titles:
            continue
        offsets = []
        stream = ""
        for line in lines:
            offsets.append(len(stream))
            stream += _alphanumeric(line.text)
        position = 0
        for title in titles:
            key = _alphanumeric(title)
            found = stream.find(key, position) if key else -1
            if found >= 0:
                position = found + len(key)
                line_index = bisect.bisect_right(offsets, found) - 1
            else:
                line_index = max(0, bisect.bisect_right(offsets, position) - 1)
            starts[(index, line_index)] = title
    return starts


def _type_size_starts(pages: Sequence[Sequence[Line]]) -> _Starts:
    body_size = _body_size(line for lines in pages for line in lines)
    starts: _Starts = {}
    for index, lines in enumerate(pages):
        for first, block in _blocks(lines):
            if _is_heading(block, body_size):
                starts[(index, first)] = " ".join(line.text for line in block)
    return starts


def _paragraphs(pages: Sequence[Sequence[Line]], starts: _Starts) -> list[TextBlock]:
    """Lines of one block under one section make a paragraph."""
    hyphenated = hyphenated_words(pages)
    paragraphs: list[TextBlock] = []
    section = ""
    for index, lines in enumerate(pages):
        current: list[Line] = []
        for line_index, line in enumerate(lines):
            title = starts.get((index, line_index))
            if current and (title is not None or line.block != current[-1].block):
                paragraphs.append(TextBlock(index + 1, section, join_lines(current, hyphenated)))
                current = []
            if title is not None:
                section = title
            current.append(line)
        if current:
            paragraphs.append(TextBlock(index + 1, section, join_lines(current, hyphenated)))
    return paragraphs


def _blocks(lines: Sequence[Line]) -> list[tuple[int, list[Line]]]:
    """The page's lines grouped by text block, each with the index of its first line."""
    blocks: list[tuple[int, list[Line]]] = []
    for line_index, line in enumerate(lines):
        if blocks and blocks[-1][1][-1].block == line.block:
            blocks[-1][1].append(line)
        else:
            blocks.append((line_index, [line]))
    return blocks


def _alphanumeric(text: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", text.casefold())


def _body_size(lines: Iterable[Line]) -> float:
    weights: Counter[float] = Counter()
    for line in lines:
        weights[line.size] += len(line.text)
    return weights.most_common(1)[0][0] if weights else 0.0


def _is_heading(block: Sequence[Line], body_size: float) -> bool:
    text = " ".join(line.text for line in block)
    if len(text) > _HEADING_MAX_CHARS or len(block) > 2:
        return False
    size = max(line.size for line in block)
    if size >= body_size * _HEADING_SIZE_RATIO:
        return True
    return len(block) == 1 and block[0].bold and not text.endswith(".")
