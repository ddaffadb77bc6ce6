"""Retrieval and grounding quality on the dev set (`eval/dev_set/`), through gRPC.

The manuals are real ones from Debian's documentation packages in English, German and
French, fetched with `apt-get download` into `.eval-cache/` on first use. The script starts
the real server on an embedded PostgreSQL in a temporary folder, uploads every manual
(their language is detected, not given), asks every question through `Search` in each
retrieval mode and through `StreamAnswer` (offline, no model), and prints for each half of
the set (`tune`: where weights and thresholds were chosen; `check`: what they are reported
on) and each question language:
  - hit@1, hit@5 and MRR over the answerable questions, by kind (literal, everyday,
    cross-lingual) and per signal (hybrid, vector, text). A hit is a chunk of the right
    manual starting on one of the question's pages.
  - how many unanswerable questions the answers marked GROUNDING_NOT_FOUND, and how many
    answerable ones they marked wrongly.
`--setting NAME=VALUE` (repeatable) starts the server with another setting, to compare, for
example, `EMBEDDING_LOCAL_MODEL=all-MiniLM-L6-v2-int8` on the same questions.
`--details FILE` writes, for tuning, every question's candidates (the rank of each chunk in
each signal) and the evidence the not-found decision reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_server import embedded_server
from dev_set import HALVES, LANGUAGES, DevSet, Question, fetch_pdfs, load

from chatbot.v1 import common_pb2
from chatbot_client import ChatbotClient
from chatbot_server.platform.logs import configure_logging
from chatbot_server.retrieval.hybrid_search import (
    SearchFilter,
    find_candidates,
    question_evidence,
    question_language,
)
from chatbot_server.retrieval.languages import words_of

MODES = {
    "hybrid": common_pb2.RETRIEVAL_MODE_HYBRID,
    "vector": common_pb2.RETRIEVAL_MODE_VECTOR,
    "text": common_pb2.RETRIEVAL_MODE_TEXT,
}
TOP_K = 10
ANSWERABLE_KINDS = ("literal", "everyday", "cross_lingual")


@dataclass
class Outcome:
    question: Question
    ranks: dict[str, int | None] = field(default_factory=dict)
    not_found: bool = False


def first_hit_rank(
    results: list[common_pb2.RetrievedChunk], document_id: str, pages: tuple[int, ...]
) -> int | None:
    for rank, chunk in enumerate(results, start=1):
        if chunk.document_id == document_id and chunk.page_number in pages:
            return rank
    return None


async def ask_everything(
    dev_set: DevSet, pdfs: dict[str, Path], details: bool, env: dict[str, str]
) -> tuple[list[Outcome], list[object]]:
    """Uploads the manuals to a fresh server, then searches in every mode and answers; with
    `details`, also each question's candidates."""
    configure_logging("WARNING", "console", sys.stderr)
    outcomes = []
    dumped = []
    async with (
        embedded_server(RATE_LIMIT_ENABLED="false", **env) as server,
        ChatbotClient(f"127.0.0.1:{server.port}", timeout=900) as client,
    ):
        document_ids = {}
        for name, path in pdfs.items():
            uploaded = await client.upload_document(path)
            document = await client.wait_for_document(uploaded.document.document_id)
            print(
                f"{name}: {document.page_count} pages, {document.chunk_count} chunks, "
                f"language {document.language}, title {document.title!r}",
                file=sys.stderr,
            )
            document_ids[name] = document.document_id

        for question in dev_set.questions:
            outcome = Outcome(question)
            for mode, value in MODES.items():
                response = await client.search(question.question, top_k=TOP_K, mode=value)
                outcome.ranks[mode] = first_hit_rank(
                    list(response.results), document_ids[question.document], question.pages
                )
            answer = await client.answer(question.question)
            outcome.not_found = answer.finished is not None and answer.finished.grounding == (
                "not_found"
            )
            outcomes.append(outcome)
            if details:
                dumped.append(await _candidates(server, question, document_ids))
    return outcomes, dumped


async def _candidates(server: object, question: Question, ids: dict[str, str]) -> object:
    """The candidates and evidence of one question, read in-process for tuning."""
    resources = server.resources  # type: ignore[attr-defined]
    language = await question_language(resources.pool, question.question)
    (vector,) = await resources.embedder.embed([question.question])
    found, missing = await find_candidates(
        resources.pool, question.question, vector, resources.embedder.model_name,
        SearchFilter(), language, 40, 40,
    )  # fmt: skip
    return {
        **asdict(question),
        "detected_language": language,
        "target": ids[question.document] if question.answerable else None,
        "evidence": asdict(question_evidence(question.question, language, missing)),
        "missing_words": words_of(question.question, missing.lexemes),
        "candidates": [
            [str(c.document_id), c.page_number, c.vector_rank, c.text_rank,
             round(c.term_coverage, 4), round(c.similarity, 4)]
            for c in found
        ],
    }  # fmt: skip


def rates(ranks: list[int | None]) -> str:
    if not ranks:
        return "       —"
    count = len(ranks)
    hit1 = sum(1 for r in ranks if r is not None and r <= 1) / count
    hit5 = sum(1 for r in ranks if r is not None and r <= 5) / count
    mrr = sum(1 / r for r in ranks if r is not None) / count
    return f"{hit1:.2f} {hit5:.2f} {mrr:.2f} ({count:>2})"


def report(dev_set: DevSet, outcomes: list[Outcome]) -> None:
    print(f"Retrieval, top {TOP_K}: hit@1 hit@5 MRR (questions), by question language")
    for half in HALVES:
        print(f"\n{half} half")
        for language in LANGUAGES:
            mine = [
                o
                for o in outcomes
                if dev_set.half(o.question) == half and o.question.language == language
            ]
            answerable = [o for o in mine if o.question.answerable]
            for mode in MODES:
                row = [rates([o.ranks[mode] for o in answerable])]
                for kind in ANSWERABLE_KINDS:
                    row.append(
                        rates([o.ranks[mode] for o in answerable if o.question.kind == kind])
                    )
                print(f"  {language} {mode:<6} all {row[0]} | " + " | ".join(
                    f"{kind} {r}" for kind, r in zip(ANSWERABLE_KINDS, row[1:], strict=True)
                ))  # fmt: skip
            unanswerable = [o for o in mine if not o.question.answerable]
            marked = sum(o.not_found for o in unanswerable)
            wrongly = sum(o.not_found for o in answerable)
            print(
                f"  {language} not found: {marked} of {len(unanswerable)} unanswerable marked; "
                f"{wrongly} of {len(answerable)} answerable marked wrongly"
            )
    print("\nBy the manual's language (check half, hybrid):")
    by_document_language: dict[str, list[int | None]] = defaultdict(list)
    for o in outcomes:
        if o.question.answerable and dev_set.half(o.question) == "check":
            by_document_language[dev_set.document_language(o.question)].append(o.ranks["hybrid"])
    for language in LANGUAGES:
        print(f"  {language} manuals {rates(by_document_language[language])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", type=Path, help="write per-question candidates as JSON")
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()
    env = dict(setting.split("=", 1) for setting in args.setting)
    dev_set = load()
    pdfs = fetch_pdfs(dev_set.sources)
    outcomes, candidates = asyncio.run(ask_everything(dev_set, pdfs, args.details is not None, env))
    report(dev_set, outcomes)
    if args.details is not None:
        args.details.write_text(json.dumps(candidates, indent=0))


if __name__ == "__main__":
    main()
