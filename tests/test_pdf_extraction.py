"""Text, pages and sections from real PDFs made with PyMuPDF, and the ways PDFs go wrong."""

from __future__ import annotations

import pytest

from chatbot_server.documents.pdf_extraction import UnreadableDocumentError, extract_document
from tests.pdfs import (
    ZERO_PAGE_PDF,
    Section,
    encrypted_pdf,
    image_only_pdf,
    make_pdf,
    text_pdf,
)

MANUAL = [
    [Section("Installation", ["Mount the unit on a flat wall.", "Connect the power cable."])],
    [Section("", ["Tighten all four screws."]), Section("Operation", ["Press the red button."])],
    [Section("", ["Release it after three seconds."])],
]


@pytest.mark.parametrize("outline", [False, True], ids=["type size", "outline"])
def test_paragraphs_keep_their_page_and_section(outline: bool) -> None:
    extracted = extract_document(make_pdf(MANUAL, outline=outline), max_pages=100)
    assert extracted.page_count == 3
    located = {block.text: (block.page_number, block.section_title) for block in extracted.blocks}
    assert located["Mount the unit on a flat wall."] == (1, "Installation")
    assert located["Tighten all four screws."] == (2, "Installation")
    assert located["Press the red button."] == (2, "Operation")
    assert located["Release it after three seconds."] == (3, "Operation")
    assert extracted.warnings == []


def test_pages_without_text_are_named_in_a_warning() -> None:
    extracted = extract_document(text_pdf(["First page.", "", "Third page."]), max_pages=100)
    assert [block.page_number for block in extracted.blocks] == [1, 3]
    assert extracted.warnings == ["1 of 3 pages have no extractable text: 2"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n this is not really a PDF \x00\x01", "not a readable PDF"),
        (b"hello, I am a text file", "not a readable PDF"),
        (encrypted_pdf(), "password-protected"),
        (ZERO_PAGE_PDF, "no pages"),
        (image_only_pdf(), "no extractable text"),
    ],
    ids=["corrupt", "not a pdf", "encrypted", "zero pages", "scanned"],
)
def test_unreadable_documents_fail_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableDocumentError, match=reason):
        extract_document(data, max_pages=100)
