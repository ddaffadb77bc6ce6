"""Keeps the dev set (`eval/dev_set/`) honest; exits 1 and lists every problem found.

Without the PDFs (as CI runs it) it checks the set's shape: at least 180 questions over at
least 8 manuals, at least 2 per language with one in each half; every kind in every
language; at least 10 unanswerable questions per language; a cross-lingual question asked
in a language other than its document's, the others in their document's; everyday
wording sharing no four-word sequence with its quoted evidence; no question twice.

With `--pdfs` it fetches the manuals (as `make eval` does) and also checks, on the text the
server extracts: every page exists and holds its quoted evidence; everyday wording shares
no four-word sequence with its pages; no unanswerable question's key term appears in any
manual. `--dump DIR` writes each manual's page texts to DIR/<document>/<page>.txt.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from dev_set import (
    DEV_SET,
    HALVES,
    KINDS,
    LANGUAGES,
    DevSet,
    fetch_pdfs,
    fold,
    load,
    page_texts,
)
from dev_set import word_sequences as sequences

MIN_QUESTIONS = 180
MIN_MANUALS = 8
MIN_UNANSWERABLE_PER_LANGUAGE = 10


def shape_problems(dev_set: DevSet) -> list[str]:
    problems = []
    sources = dev_set.sources
    if len(sources) < MIN_MANUALS:
        problems.append(f"{len(sources)} manuals; at least {MIN_MANUALS} are needed")
    for source in sources.values():
        if source.language not in LANGUAGES or source.half not in HALVES:
            problems.append(f"{source.document}: language or half not one of the known ones")
    for language in LANGUAGES:
        for half in HALVES:
            if not any(s.language == language and s.half == half for s in sources.values()):
                problems.append(f"no {language} manual in the {half} half")
    if len(dev_set.questions) < MIN_QUESTIONS:
        problems.append(f"{len(dev_set.questions)} questions; at least {MIN_QUESTIONS} needed")

    seen: Counter[str] = Counter(fold(q.question) for q in dev_set.questions)
    problems += [f"asked twice: {text!r}" for text, count in seen.items() if count > 1]
    kinds = Counter((q.language, q.kind) for q in dev_set.questions)
    for language in LANGUAGES:
        for kind in KINDS:
            if not kinds[(language, kind)]:
                problems.append(f"no {kind} question in {language}")
        if kinds[(language, "unanswerable")] < MIN_UNANSWERABLE_PER_LANGUAGE:
            problems.append(
                f"fewer than {MIN_UNANSWERABLE_PER_LANGUAGE} unanswerable in {language}"
            )

    for q in dev_set.questions:
        where = f"{q.file}: {q.question!r}"
        if q.document not in sources:
            problems.append(f"{where}: unknown document {q.document!r}")
            continue
        if q.kind not in KINDS or q.language not in LANGUAGES:
            problems.append(f"{where}: kind or language not one of the known ones")
            continue
        document_language = dev_set.document_language(q)
        if (q.kind == "cross_lingual") != (q.language != document_language):
            problems.append(
                f"{where}: a {q.kind} question in {q.language} about a {document_language} manual"
            )
        if not q.answerable:
            if q.pages or not q.absent_terms:
                problems.append(f"{where}: unanswerable questions name key terms, not pages")
            continue
        if not q.pages or len(q.evidence) != len(q.pages):
            problems.append(f"{where}: needs pages and one quoted passage per page")
        if q.kind == "everyday" and any(sequences(q.question) & sequences(e) for e in q.evidence):
            problems.append(f"{where}: everyday wording shares four words with its evidence")
    return problems


def text_problems(dev_set: DevSet, texts: dict[str, list[str]]) -> list[str]:
    problems = []
    folded = {name: [fold(page) for page in pages] for name, pages in texts.items()}
    everything = " ".join(" ".join(pages) for pages in folded.values())
    for q in dev_set.questions:
        where = f"{q.file}: {q.question!r}"
        if not q.answerable:
            present = [t for t in q.absent_terms if f" {fold(t)} " in f" {everything} "]
            if present:
                problems.append(f"{where}: key terms found in the manuals: {present}")
            continue
        pages = folded[q.document]
        for page, evidence in zip(q.pages, q.evidence, strict=False):
            if not 1 <= page <= len(pages):
                problems.append(f"{where}: page {page} does not exist")
            elif fold(evidence) not in pages[page - 1]:
                problems.append(f"{where}: page {page} does not hold {evidence!r}")
        if q.kind == "everyday":
            shared = set().union(
                *(
                    sequences(q.question) & sequences(texts[q.document][page - 1])
                    for page in q.pages
                    if 1 <= page <= len(pages)
                )
            )
            if shared:
                problems.append(f"{where}: everyday wording shares {sorted(shared)[0]} with a page")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdfs", action="store_true", help="check pages against the manuals")
    parser.add_argument("--dump", type=Path, help="write the manuals' page texts here")
    parser.add_argument("--dev-set", type=Path, default=DEV_SET, help="the set's folder")
    args = parser.parse_args()
    dev_set = load(args.dev_set)
    problems = shape_problems(dev_set)
    if args.pdfs or args.dump:
        texts = {name: page_texts(pdf) for name, pdf in fetch_pdfs(dev_set.sources).items()}
        problems += text_problems(dev_set, texts)
        if args.dump:
            for name, pages in texts.items():
                (args.dump / name).mkdir(parents=True, exist_ok=True)
                for number, text in enumerate(pages, start=1):
                    (args.dump / name / f"{number:03d}.txt").write_text(text)
    for problem in problems:
        print(problem)
    counts = Counter(
        (dev_set.half(q), q.language, q.kind)
        for q in dev_set.questions
        if q.document in dev_set.sources
    )
    print(f"{len(dev_set.questions)} questions over {len(dev_set.sources)} manuals", end="")
    print(f"; {len(problems)} problems" if problems else "; no problems")
    for half in HALVES:
        row = ", ".join(
            f"{language} {'/'.join(str(counts[(half, language, k)]) for k in KINDS)}"
            for language in LANGUAGES
        )
        print(f"  {half}: {row}  (literal/everyday/cross-lingual/unanswerable)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
