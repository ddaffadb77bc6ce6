"""The dev set (`eval/dev_set/`): its manuals, its questions, and their page texts.

`sources.json` lists the manuals: the Debian package that ships each PDF, its path inside
the package, its language and the half it belongs to (`tune` or `check`). Every other
`*.json` file there holds questions; each names its document, the language it is asked in,
its kind, the pages that answer it and, for each page, a passage quoted from it
(`evidence`). An unanswerable question names the document whose topic it is on (for its
half), no pages, and the key terms that no manual may contain (`absent_terms`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT / "eval" / "dev_set"
CACHE = ROOT / ".eval-cache"
LANGUAGES = ("en", "de", "fr")
HALVES = ("tune", "check")
KINDS = ("literal", "everyday", "cross_lingual", "unanswerable")


@dataclass(frozen=True)
class Source:
    document: str
    package: str
    path: str
    language: str
    half: str


@dataclass(frozen=True)
class Question:
    document: str
    language: str
    kind: str
    question: str
    pages: tuple[int, ...]
    evidence: tuple[str, ...]
    absent_terms: tuple[str, ...]
    file: str

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable"


@dataclass(frozen=True)
class DevSet:
    sources: dict[str, Source]
    questions: list[Question]

    def half(self, question: Question) -> str:
        return self.sources[question.document].half

    def document_language(self, question: Question) -> str:
        return self.sources[question.document].language


def load(directory: Path = DEV_SET) -> DevSet:
    sources = {
        s["document"]: Source(s["document"], s["package"], s["path"], s["language"], s["half"])
        for s in json.loads((directory / "sources.json").read_text())
    }
    questions = []
    for path in sorted(directory.glob("*.json")):
        if path.name == "sources.json":
            continue
        for q in json.loads(path.read_text()):
            questions.append(
                Question(
                    document=q["document"],
                    language=q["language"],
                    kind=q["kind"],
                    question=q["question"],
                    pages=tuple(q.get("pages", ())),
                    evidence=tuple(q.get("evidence", ())),
                    absent_terms=tuple(q.get("absent_terms", ())),
                    file=path.name,
                )
            )
    return DevSet(sources, questions)


def fetch_pdfs(sources: dict[str, Source]) -> dict[str, Path]:
    """The PDFs by document name, downloading their Debian packages when missing."""
    CACHE.mkdir(exist_ok=True)
    missing = [s for s in sources.values() if not (CACHE / s.path).exists()]
    packages = sorted({s.package for s in missing})
    if packages:
        print(f"fetching {', '.join(packages)} (apt-get download)", file=sys.stderr)
        if subprocess.run(["apt-get", "download", "-qq", *packages], cwd=CACHE).returncode:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", "-qq", *packages], cwd=CACHE, check=True)
        for deb in CACHE.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
            deb.unlink()
    return {name: CACHE / s.path for name, s in sources.items()}


def page_texts(pdf: Path) -> list[str]:
    """Each page's text as the server extracts and cleans it (index 0 is page 1)."""
    from chatbot_server.documents.pdf_extraction import extract_document

    extracted = extract_document(pdf.read_bytes(), max_pages=100_000)
    pages = [""] * extracted.page_count
    for block in extracted.blocks:
        pages[block.page_number - 1] += block.text + "\n"
    return pages


_NOT_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower case, accents and punctuation gone, single spaces: what quotes are compared in."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", bare).strip()


def word_sequences(text: str, length: int = 4) -> set[tuple[str, ...]]:
    words = fold(text).split()
    return {tuple(words[i : i + length]) for i in range(len(words) - length + 1)}
