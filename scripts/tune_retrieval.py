"""Chooses the fusion weights and the not-found decision on the dev set's tune half, and
shows what the choice gives on the check half.

Reads the candidates `evaluate.py --details FILE` wrote (each question's chunks with their
rank in each signal, and the evidence the not-found decision reads), fuses them again with
every weight on a grid, and tries every not-found word-frequency threshold. Prints, per
question language, the best weights on the tune half with the figures they give on both
halves, and the threshold that marks most unanswerable questions on the tune half while
marking at most 5 % of the answerable ones in every language.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
from dev_set import LANGUAGES, load

from chatbot_server.answers.grounding import MAX_MISSING_TERM_SHARE
from chatbot_server.retrieval import hybrid_search
from chatbot_server.retrieval.hybrid_search import Candidate, RetrievalMode, fuse
from chatbot_server.retrieval.languages import RARITY_FLOOR

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
        "\nNot found: answered when the rarest missing word has a frequency >= f (Zipf) and "
        f"the missing term share < {MAX_MISSING_TERM_SHARE}"
    )
    table = evidence_table(questions, halves)
    best = None
    for frequency in [x / 10 for x in range(round(RARITY_FLOOR * 10), 51)]:
        outcome = _marking(table, "tune", frequency)
        if max(wrong for _, wrong in outcome.values()) > MAX_WRONGLY_MARKED:
            continue
        key = (min(m for m, _ in outcome.values()), sum(m for m, _ in outcome.values()))
        if best is None or key > best[0]:
            best = (key, frequency)
    if best is None:
        print("  no threshold keeps the answerable questions wrongly marked at most 5 %")
        return
    frequency = best[1]
    print(f"  chosen on the tune half: f >= {frequency}")
    for half in ("tune", "check"):
        outcome = _marking(table, half, frequency)
        print(
            f"  {half}: "
            + ", ".join(
                f"{language} {marked:.2f} marked / {wrong:.2f} wrongly"
                for language, (marked, wrong) in outcome.items()
            )
        )


Table = dict[tuple[str, str], tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]]


def evidence_table(questions: list[dict[str, Any]], halves: dict[str, str]) -> Table:
    """Per half and question language: each question's missing term share and the
    frequency of its rarest missing word, and whether it is unanswerable."""
    table = {}
    for half, language in itertools.product(("tune", "check"), LANGUAGES):
        mine = [q for q in questions if halves[q["document"]] == half and q["language"] == language]
        features = np.array(
            [
                [
                    q["evidence"]["missing_term_share"],
                    q["evidence"]["missing_word_frequency"],
                ]
                for q in mine
            ]
        )
        unanswerable = np.array([q["kind"] == "unanswerable" for q in mine], dtype=bool)
        table[(half, language)] = (features.reshape(len(mine), 2), unanswerable)
    return table


def _marking(table: Table, half: str, frequency: float) -> dict[str, tuple[float, float]]:
    """Per question language: the share of unanswerable questions marked not found and the
    share of answerable ones marked wrongly."""
    result = {}
    for language in LANGUAGES:
        features, unanswerable = table[(half, language)]
        answered = (features[:, 1] >= frequency) & (features[:, 0] < MAX_MISSING_TERM_SHARE)
        result[language] = (
            float(np.mean(~answered[unanswerable])) if unanswerable.any() else 0.0,
            float(np.mean(~answered[~unanswerable])) if (~unanswerable).any() else 0.0,
        )
    return result


if __name__ == "__main__":
    main()
