"""PDFs made on the spot with PyMuPDF, for tests and benchmarks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymupdf


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)


def make_pdf(pages: list[list[Section]], *, outline: bool = False) -> bytes:
    """One list of sections per page: each title set large, its paragraphs in body size."""
    document = pymupdf.open()
    toc = []
    for page_number, sections in enumerate(pages, start=1):
        page = document.new_page()
        y = 72.0
        for section in sections:
            if section.title:
                # insert_text places the baseline; leave the glyphs room above it.
                page.insert_text((72, y + 18), section.title, fontsize=18)
                toc.append([1, section.title, page_number])
                y += 36
            for paragraph in section.paragraphs:
                box = pymupdf.Rect(72, y, 540, y + 400)
                overflow = page.insert_textbox(box, paragraph, fontsize=10)
                assert overflow >= 0, "paragraph does not fit on the page"
                y += 400 - overflow + 12
    if outline:
        document.set_toc(toc)
    return bytes(document.tobytes())


def text_pdf(page_texts: list[str]) -> bytes:
    """Plain body text, one string per page, no headings."""
    return make_pdf([[Section("", [text])] for text in page_texts])


def encrypted_pdf() -> bytes:
    document = pymupdf.open()
    document.new_page().insert_text((72, 72), "Secret text", fontsize=11)
    return bytes(
        document.tobytes(
            encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user-secret", owner_pw="owner"
        )
    )


def lying_page_tree_pdf() -> bytes:
    """A readable PDF whose page tree claims a negative number of pages."""
    document = pymupdf.open()
    for number in range(3):
        document.new_page().insert_text((72, 72), f"Page {number + 1} has text.")
    data = bytes(document.tobytes(garbage=0, deflate=False, no_new_id=True))
    return re.sub(rb"/Count \d+", b"/Count -1", data)


def image_only_pdf(pages: int = 2) -> bytes:
    """Pages with drawings and no text layer, as a scan without OCR has."""
    document = pymupdf.open()
    for _ in range(pages):
        page = document.new_page()
        page.draw_rect(pymupdf.Rect(72, 72, 300, 300), color=(0, 0, 0), fill=(0.5, 0.5, 0.5))
    return bytes(document.tobytes())


ZERO_PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
