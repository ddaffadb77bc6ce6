"""Chooses the fusion weights and the not-found decision on the dev set's tune half, and
shows what the choice gives on the check half.

Reads the candidates `evaluate.py --details FILE` wrote (each question's chunks with their
rank in each signal, and the evidence the not-found decision reads), fuses them again with
every weight on a grid, and tries every pair of not-found thresholds. Prints, per question
language, the best weights on the tune half with the figures they give on both halves, and
the thresholds that mark most unanswerable questions on the tune half while marking at most
5 % of the answerable ones in every language.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from uuid import UUID

from dev_set import LANGUAGES, load

from chatbot_server.retrieval import hybrid_search
from chatbot_server.retrieval.hybrid_search import Candidate, RetrievalMode, fuse

WEIGHTS = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
THRESHOLDS = (0.0, 0.1, 0.2, 0.3)
MAX_WRONGLY_MARKED = 0.05


def candidates(question: dict[str, object]) -> list[Candidate]:
    return [
        Candidate(UUID(int=i), UUID(document), "", page, "", "", 0, similarity, v, t, coverage)
        for i, (document, page, v, t, coverage, similarity) in enumerate(question["candidates"])  # type: ignore[arg-type]
    ]


def rank_of(
    question: dict[str, object], weights: tuple[float, float], threshold: float
) -> int | None:
    hybrid_search.FUSION_WEIGHTS[str(question["detected_language"])] = weights
    hits = fuse(
        candidates(question),
        threshold,
        10,
        RetrievalMode.HYBRID,
        str(question["detected_language"]),
    )
    for rank, hit in enumerate(hits, start=1):
        found = hit.candidate
        if str(found.document_id) == question["target"] and found.page_number in question["pages"]:  # type: ignore[operator]
            return rank
    return None


def figures(ranks: list[int | None]) -> tuple[float, float]:
    count = max(len(ranks), 1)
    hit5 = sum(1 for r in ranks if r is not None and r <= 5) / count
    mrr = sum(1 / r for r in ranks if r is not None) / count
    return hit5, mrr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("details", type=Path)
    args = parser.parse_args()
    dev_set = load()
    halves = {name: source.half for name, source in dev_set.sources.items()}
    questions = json.loads(args.details.read_text())
    answerable = [q for q in questions if q["kind"] != "unanswerable"]

    print(
        "Fusion weights (vector, full text) and similarity threshold by question language: "
        "hit@5 / MRR, best five on the tune half"
    )
    for language in LANGUAGES:
        mine = [q for q in answerable if q["language"] == language]
        scored = []
        for vector, text, threshold in itertools.product(WEIGHTS, WEIGHTS, THRESHOLDS):
            if (vector, text) == (0.0, 0.0):
                continue
            by_half = {
                half: figures(
                    [
                        rank_of(q, (vector, text), threshold)
                        for q in mine
                        if halves[q["document"]] == half
                    ]
                )
                for half in ("tune", "check")
            }
            scored.append(
                (by_half["tune"][1], by_half["tune"][0], (vector, text, threshold), by_half)
            )
        scored.sort(reverse=True)
        for _, _, choice, by_half in scored[:5]:
            tune, check = by_half["tune"], by_half["check"]
            print(
                f"  {language} {choice}: tune {tune[0]:.3f} / {tune[1]:.3f}   "
                f"check {check[0]:.3f} / {check[1]:.3f}"
            )

    print(
        "\nNot found: answered when missing term share < m and (similarity gap >= g or "
        "term coverage >= c)"
    )
    gaps = sorted({round(q["evidence"]["similarity_gap"], 3) for q in questions})
    coverages = [x / 20 for x in range(0, 21)] + [1.01]
    missing = [x / 10 for x in range(1, 11)] + [1.01]
    best = None
    for gap, coverage, miss in itertools.product(gaps, coverages, missing):
        outcome = _marking(questions, halves, "tune", gap, coverage, miss)
        worst_wrong = max(wrong for _, wrong in outcome.values())
        if worst_wrong > MAX_WRONGLY_MARKED:
            continue
        worst_marked = min(marked for marked, _ in outcome.values())
        total_marked = sum(marked for marked, _ in outcome.values())
        key = (worst_marked, total_marked, -gap, miss)
        if best is None or key > best[0]:
            best = (key, gap, coverage, miss)
    if best is None:
        print("  no thresholds keep the answerable questions wrongly marked at most 5 %")
        return
    _, gap, coverage, miss = best
    print(f"  chosen on the tune half: m < {miss}, gap >= {gap}, coverage >= {coverage}")
    for half in ("tune", "check"):
        outcome = _marking(questions, halves, half, gap, coverage, miss)
        print(
            f"  {half}: "
            + ", ".join(
                f"{language} {marked:.2f} marked / {wrong:.2f} wrongly"
                for language, (marked, wrong) in outcome.items()
            )
        )


def _marking(
    questions: list[dict[str, object]],
    halves: dict[str, str],
    half: str,
    gap: float,
    cov: float,
    miss: float,
) -> dict[str, tuple[float, float]]:
    """Per question language: the share of unanswerable questions marked not found and the
    share of answerable ones marked wrongly."""
    result = {}
    for language in LANGUAGES:
        mine = [q for q in questions if halves[q["document"]] == half and q["language"] == language]  # type: ignore[index]
        not_found = {id(q): not _answered(q["evidence"], gap, cov, miss) for q in mine}  # type: ignore[arg-type]
        unanswerable = [q for q in mine if q["kind"] == "unanswerable"]
        answerable = [q for q in mine if q["kind"] != "unanswerable"]
        result[language] = (
            sum(not_found[id(q)] for q in unanswerable) / max(len(unanswerable), 1),
            sum(not_found[id(q)] for q in answerable) / max(len(answerable), 1),
        )
    return result


def _answered(evidence: dict[str, float], gap: float, cov: float, miss: float) -> bool:
    return evidence["missing_term_share"] < miss and (
        evidence["similarity_gap"] >= gap or evidence["term_coverage"] >= cov
    )


if __name__ == "__main__":
    main()
