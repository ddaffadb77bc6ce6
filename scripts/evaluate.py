"""Retrieval and grounding quality on the dev set (`eval/dev_set.json`), through gRPC.

The PDFs are real manuals from Debian's documentation packages, fetched with
`apt-get download` into `.eval-cache/` on first use. The script starts the real server on an
embedded PostgreSQL in a temporary folder, uploads the PDFs, asks every question through
`Search` in each retrieval mode and through `StreamAnswer` (offline, no model), and prints:
  - hit@1, hit@5, hit@10 and MRR over the answerable questions: overall, by kind
    (literal / paraphrase) and per signal (hybrid, vector, text). A hit is a chunk of the
    right document starting on one of the question's pages.
  - not-found precision and recall: how many answers marked GROUNDING_NOT_FOUND were for
    questions none of the documents answer, and how many of those were marked.
`--details FILE` writes every question's ranked pages per mode as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench_server import embedded_server

from chatbot.v1 import common_pb2
from chatbot_client import ChatbotClient
from chatbot_server.platform.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT / "eval" / "dev_set.json"
CACHE = ROOT / ".eval-cache"
MODES = {
    "hybrid": common_pb2.RETRIEVAL_MODE_HYBRID,
    "vector": common_pb2.RETRIEVAL_MODE_VECTOR,
    "text": common_pb2.RETRIEVAL_MODE_TEXT,
}
TOP_K = 10


@dataclass(frozen=True)
class Question:
    document: str | None
    pages: frozenset[int]
    kind: str
    question: str


def fetch_sources(sources: list[dict[str, str]]) -> dict[str, Path]:
    """The dev set's PDFs by document name, downloading their Debian packages when missing."""
    CACHE.mkdir(exist_ok=True)
    missing = [s for s in sources if not (CACHE / s["path"]).exists()]
    packages = sorted({s["package"] for s in missing})
    if packages:
        print(f"fetching {', '.join(packages)} (apt-get download)", file=sys.stderr)
        if subprocess.run(["apt-get", "download", "-qq", *packages], cwd=CACHE).returncode:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", "-qq", *packages], cwd=CACHE, check=True)
        for deb in CACHE.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
            deb.unlink()
    return {s["document"]: CACHE / s["path"] for s in sources}


def first_hit_rank(
    results: list[common_pb2.RetrievedChunk], document_id: str, pages: frozenset[int]
) -> int | None:
    for rank, chunk in enumerate(results, start=1):
        if chunk.document_id == document_id and chunk.page_number in pages:
            return rank
    return None


def summarize(ranks: list[int | None]) -> str:
    count = len(ranks)

    def hit(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / count

    mrr = sum(1 / r for r in ranks if r is not None) / count
    return (
        f"hit@1 {hit(1):.3f}  hit@5 {hit(5):.3f}  hit@10 {hit(10):.3f}  MRR {mrr:.3f}  (n={count})"
    )


@dataclass
class Results:
    ranks: dict[str, list[int | None]]
    groundings: list[str]
    details: list[dict[str, object]]
    answers: list[dict[str, str]]


async def ask_everything(pdfs: dict[str, Path], questions: list[Question]) -> Results:
    """Uploads the PDFs to a fresh server, then searches in every mode and answers."""
    results = Results({mode: [] for mode in MODES}, [], [], [])
    configure_logging("WARNING", "console", sys.stderr)
    env = {"RATE_LIMIT_ENABLED": "false"}
    async with (
        embedded_server(**env) as server,
        ChatbotClient(f"127.0.0.1:{server.port}", timeout=600) as client,
    ):
        document_ids = {}
        for name, path in pdfs.items():
            uploaded = await client.upload_document(path)
            document = await client.wait_for_document(uploaded.document.document_id)
            print(
                f"{name}: {document.page_count} pages, {document.chunk_count} chunks, "
                f"title {document.title!r}",
                file=sys.stderr,
            )
            document_ids[name] = document.document_id

        for question in questions:
            record: dict[str, object] = {"question": question.question, "kind": question.kind}
            for mode, value in MODES.items():
                response = await client.search(question.question, top_k=TOP_K, mode=value)
                found = list(response.results)
                rank = None
                if question.document is not None:
                    rank = first_hit_rank(found, document_ids[question.document], question.pages)
                    results.ranks[mode].append(rank)
                record[mode] = {
                    "rank": rank,
                    "hits": [
                        (
                            r.document_title,
                            r.page_number,
                            r.vector_rank,
                            r.text_rank,
                            round(r.term_coverage, 3),
                            round(r.vector_similarity, 3),
                        )
                        for r in found
                    ],
                }
            results.details.append(record)

        for question in questions:
            answer = await client.answer(question.question)
            finished = answer.finished
            results.groundings.append(finished.grounding if finished is not None else "")
            results.answers.append({"question": question.question, "answer": answer.text})
    return results


def report(questions: list[Question], results: Results) -> None:
    answerable = [q for q in questions if q.document is not None]
    print(f"Retrieval, top {TOP_K}, {len(answerable)} answerable questions:")
    kinds = sorted({q.kind for q in answerable})
    for mode in MODES:
        print(f"  {mode:<7} all        {summarize(results.ranks[mode])}")
        for kind in kinds:
            kind_ranks = [
                r for q, r in zip(answerable, results.ranks[mode], strict=True) if q.kind == kind
            ]
            print(f"  {mode:<7} {kind:<10} {summarize(kind_ranks)}")

    marked = [q for q, g in zip(questions, results.groundings, strict=True) if g == "not_found"]
    unanswerable = [q for q in questions if q.document is None]
    true_marked = [q for q in marked if q.document is None]
    precision = len(true_marked) / len(marked) if marked else 1.0
    recall = len(true_marked) / len(unanswerable) if unanswerable else 1.0
    wrongly = len(marked) - len(true_marked)
    print(
        f"Not found: precision {precision:.3f}, recall {recall:.3f} "
        f"({len(true_marked)} of {len(unanswerable)} unanswerable marked; "
        f"{wrongly} of {len(answerable)} answerable marked = {wrongly / len(answerable):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", type=Path, help="write per-question rankings as JSON")
    args = parser.parse_args()
    dev_set = json.loads(DEV_SET.read_text())
    questions = [
        Question(q["document"], frozenset(q["pages"]), q["kind"], q["question"])
        for q in dev_set["questions"]
    ]
    results = asyncio.run(ask_everything(fetch_sources(dev_set["sources"]), questions))
    report(questions, results)
    if args.details is not None:
        details = {"searches": results.details, "answers": results.answers}
        args.details.write_text(json.dumps(details, indent=1))


if __name__ == "__main__":
    main()
