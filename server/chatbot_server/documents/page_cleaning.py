"""Turning a PDF's text lines into clean paragraphs: pure functions, no PyMuPDF.

What a PDF's text layer holds beside the content, and what is done about it:
  - running headers and footers ("gnuplot 5.4 123", "User Guide Chapter 2 … Page 12") and
    bare page numbers, in the top or bottom band of most pages: dropped;
  - words split at line ends by a hyphen ("com-" / "mands"): joined, keeping the hyphen
    when the document writes the word with one elsewhere ("non-empty");
  - glyphs without a Unicode mapping (control characters, private-use code points, U+FFFD)
    and typographic ligatures: dropped or mapped to letters;
  - accents set as glyphs of their own before the letter, as TeX fonts without accented
    letters do ("k¨onnen", "apr`es"): joined to the letter ("können", "après");
  - tables of contents and indexes (entries joined to page numbers by dot leaders): a page
    that is mostly such entries is dropped, and so are such lines elsewhere, since they
    hold every term of the document and would match every question;
  - code set in a monospaced font: its line breaks kept, where prose lines are joined.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

# Lines within this share of the page height from the top or bottom edge may be running
# headers or footers; body text and footnotes sit further in.
EDGE_BAND = 0.1
# A line in the band repeated on this many pages is a running header or footer; so is one
# repeated on two pages at most this far apart (a short chapter's header).
REPEATED_PAGES = 3
NEARBY_PAGES = 2

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st", "\u00a0": " ", "\t": " "}
)  # fmt: skip
# Unassigned, private-use, surrogate, control and format characters: glyphs the PDF gave
# no text for (a bullet drawn from a symbol font arrives as U+0088) or invisible marks.
_DROPPED_CATEGORIES = frozenset({"Cn", "Co", "Cs", "Cc", "Cf"})
_SPACES = re.compile(r" {2,}")
_COMBINING_FOR_SPACING_ACCENT = {
    "\u00b4": "\u0301", "`": "\u0300", "\u00a8": "\u0308", "\u02c6": "\u0302",
    "\u02dc": "\u0303", "\u00b8": "\u0327", "\u02da": "\u030a",
}  # fmt: skip
# A grave accent is also a backtick: it is joined only inside a word ("apr`es") or as the
# French word "`a", so code such as `echo` keeps it.
_DETACHED_ACCENT = re.compile(
    r"([\u00b4\u00a8\u02c6\u02dc\u00b8\u02da]) ?([^\W\d_])"
    r"|(?<=[^\W\d_])(`)([^\W\d_])|(?<![\w`])(`)([aA])(?!\w)"
)
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"(page\s*)?(#|[ivxlcdm]+)(\s*(of|/)\s*#)?|[-\u2013\u2014]\s*#\s*[-\u2013\u2014]", re.IGNORECASE
)
# "Vector arithmetic . . . . . 9", "shipout. . . . . 49, 54": an entry, dot leaders, pages.
_LEADER_ENTRY = re.compile(r".*?(\.\s?){3,}\s*[\dixvlc]+(\s*,\s*[\dixvlc]+)*\s*$", re.IGNORECASE)
NAVIGATION_SHARE = 0.5
_HYPHENATED_WORD = re.compile(r"\b[^\W\d_]+(?:-[^\W\d_]+)+\b")
_ENDS_WITH_WORD_HYPHEN = re.compile(r"[^\W\d_]-$")


@dataclass(frozen=True)
class Line:
    """One line of text as the PDF lays it out."""

    page_number: int
    block: int
    text: str
    top: float
    bottom: float
    page_height: float
    size: float = 0.0
    bold: bool = False
    monospaced: bool = False

    @property
    def at_edge(self) -> bool:
        band = self.page_height * EDGE_BAND
        return self.bottom <= band or self.top >= self.page_height - band


def clean_glyphs(text: str) -> str:
    """Text without unmapped glyphs or control characters, ligatures as letters, single
    spaces."""
    if not (text.isascii() and text.isprintable()):
        text = "".join(
            c for c in text.translate(_LIGATURES)
            if unicodedata.category(c) not in _DROPPED_CATEGORIES
        )  # fmt: skip
    if "`" in text or not text.isascii():
        text = _DETACHED_ACCENT.sub(_attach_accent, text)
    return _SPACES.sub(" ", text).strip()


def _attach_accent(match: re.Match[str]) -> str:
    accent, letter = (group for group in match.groups() if group is not None)
    # TeX sets an accented i on a dotless one.
    base = "i" if letter == "\u0131" else letter
    composed = unicodedata.normalize("NFC", base + _COMBINING_FOR_SPACING_ACCENT[accent])
    return composed if len(composed) == 1 else match[0]


def remove_running_lines(pages: Sequence[Sequence[Line]]) -> list[list[Line]]:
    """The pages without running headers, running footers and bare page numbers."""
    pages_by_key: dict[str, list[int]] = defaultdict(list)
    for index, lines in enumerate(pages):
        for key in {_edge_key(line) for line in lines if line.at_edge}:
            pages_by_key[key].append(index)
    running = {key for key, indexes in pages_by_key.items() if _is_running(indexes)}
    return [
        [
            line
            for line in lines
            if not (line.at_edge and (_edge_key(line) in running or _is_page_number(line)))
        ]
        for lines in pages
    ]


def remove_navigation(pages: Sequence[Sequence[Line]]) -> list[list[Line]]:
    """The pages without table-of-contents and index entries; pages made mostly of them
    lose everything."""
    cleaned = []
    for lines in pages:
        kept = [line for line in lines if not _LEADER_ENTRY.fullmatch(line.text)]
        if lines and len(kept) < len(lines) * (1 - NAVIGATION_SHARE):
            kept = []
        cleaned.append(kept)
    return cleaned


def hyphenated_words(pages: Sequence[Sequence[Line]]) -> frozenset[str]:
    """Words the document writes with a hyphen inside a line, lower-cased."""
    return frozenset(
        word.lower()
        for lines in pages
        for line in lines
        for word in _HYPHENATED_WORD.findall(line.text)
    )


def join_lines(lines: Sequence[Line], hyphenated: frozenset[str]) -> str:
    """One paragraph from its lines: prose joined with spaces (line-end hyphenation undone),
    monospaced lines kept on lines of their own."""
    text = ""
    previous: Line | None = None
    for line in lines:
        if previous is None:
            text = line.text
        elif line.monospaced or previous.monospaced:
            text += "\n" + line.text
        elif _ENDS_WITH_WORD_HYPHEN.search(text) and line.text[:1].islower():
            text = _join_hyphenated(text, line.text, hyphenated)
        else:
            text += " " + line.text
        previous = line
    return text


def _join_hyphenated(before: str, after: str, hyphenated: frozenset[str]) -> str:
    head = before.rsplit(" ", 1)[-1][:-1]
    tail = after.split(" ", 1)[0]
    word_head = re.sub(r"^\W+", "", head)
    word_tail = re.sub(r"\W+$", "", tail)
    if f"{word_head}-{word_tail}".lower() in hyphenated:
        return before + after
    return before[:-1] + after


def _edge_key(line: Line) -> str:
    return _DIGITS.sub("#", " ".join(line.text.casefold().split()))


def _is_page_number(line: Line) -> bool:
    return _PAGE_NUMBER.fullmatch(_edge_key(line)) is not None


def _is_running(page_indexes: list[int]) -> bool:
    if len(page_indexes) >= REPEATED_PAGES:
        return True
    return any(b - a <= NEARBY_PAGES for a, b in itertools.pairwise(page_indexes))
