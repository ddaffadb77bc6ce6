"""Search: hybrid retrieval through the public RPC, and the pure rank fusion under it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_server.answers.grounding import documents_answer
from chatbot_server.retrieval.hybrid_search import (
    FULL_TEXT,
    FUSION_WEIGHTS,
    VECTOR,
    Candidate,
    Evidence,
    RetrievalMode,
    fuse,
)
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents, wait_until_final
from tests.pdfs import text_pdf
from tests.servers import RunningServer


@pytest_asyncio.fixture(scope="module")
async def library(
    server: RunningServer, database: MigratedDatabase
) -> AsyncIterator[tuple[ChatbotClient, pb.Document, pb.Document]]:
    """The manual and an unrelated recipe, both READY."""
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address, timeout=30) as client:
        manual = await client.upload_document(
            manual_pdf(), title="XPD-42 Manual", tags=["manual"], document_type="manual"
        )
        recipe = await client.upload_document(
            text_pdf(
                [
                    "Pancakes: whisk two eggs with milk and flour, rest the batter for ten "
                    "minutes, then fry in butter until golden on both sides."
                ]
            ),
            title="Pancakes",
            language="en",
            tags=["kitchen"],
        )
        documents = [
            await wait_until_final(client, uploaded.document.document_id)
            for uploaded in (manual, recipe)
        ]
        assert all(d.status == pb.DOCUMENT_STATUS_READY for d in documents)
        yield client, documents[0], documents[1]


async def test_search_finds_the_passage_with_page_section_and_signals(
    library: tuple[ChatbotClient, pb.Document, pb.Document],
) -> None:
    client, manual, _ = library
    response = await client.search("What does a blinking red status LED mean?")
    assert response.embedding_model == "use-multilingual-v3"
    best = response.results[0]
    assert best.document_id == manual.document_id
    assert best.document_title == "XPD-42 Manual"
    assert best.page_number == 3
    assert best.section_title == "Troubleshooting"
    assert "blinks red" in best.text
    assert common_pb2.RETRIEVAL_SIGNAL_VECTOR in best.signals
    assert 0 < best.relevance_score <= 1
    assert best.vector_similarity > 0.3
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True)


async def test_exact_words_are_found_by_full_text_search(
    library: tuple[ChatbotClient, pb.Document, pb.Document],
) -> None:
    client, manual, _ = library
    response = await client.search("netmask gateway")
    best = response.results[0]
    assert best.document_id == manual.document_id
    assert best.page_number == 2
    assert common_pb2.RETRIEVAL_SIGNAL_FULL_TEXT in best.signals


async def test_filters_restrict_the_documents_searched(
    library: tuple[ChatbotClient, pb.Document, pb.Document],
) -> None:
    client, manual, recipe = library
    only_recipe = await client.search("wall mounting screws", document_ids=[recipe.document_id])
    assert {r.document_id for r in only_recipe.results} <= {recipe.document_id}
    by_tag = await client.search("eggs, flour and wall screws", tags=["manual"])
    assert {r.document_id for r in by_tag.results} == {manual.document_id}
    by_type = await client.search("eggs and flour", document_type="manual")
    assert all(r.document_id == manual.document_id for r in by_type.results)


async def test_top_k_and_threshold_bound_the_results(
    library: tuple[ChatbotClient, pb.Document, pb.Document],
) -> None:
    client, _, _ = library
    one = await client.search("controller", top_k=1)
    assert len(one.results) == 1
    strict = await client.search("quantum chromodynamics lattice", similarity_threshold=0.99)
    assert all(common_pb2.RETRIEVAL_SIGNAL_FULL_TEXT in r.signals for r in strict.results)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({"query": "ok", "top_k": 51}, "top_k"),
        ({"query": "ok", "similarity_threshold": 1.5}, "similarity_threshold"),
        ({"query": "ok", "filter": common_pb2.RetrievalFilter(document_ids=["nope"])},
         "filter.document_ids[0]"),
    ],
)  # fmt: skip
async def test_bad_search_requests_name_the_field(
    library: tuple[ChatbotClient, pb.Document, pb.Document],
    request_fields: dict[str, object],
    field: str,
) -> None:
    client, _, _ = library
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.documents.Search(pb.SearchRequest(**request_fields), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")


def candidate(
    vector_rank: int | None, text_rank: int | None, similarity: float, coverage: float = 0.5
) -> Candidate:
    return Candidate(
        chunk_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        document_title="t",
        page_number=1,
        section_title="",
        text="x",
        ordinal=0,
        similarity=similarity,
        vector_rank=vector_rank,
        text_rank=text_rank,
        term_coverage=coverage if text_rank is not None else 0.0,
    )


def test_fusion_prefers_chunks_both_signals_found() -> None:
    both = candidate(2, 2, 0.6)
    vector_only = candidate(1, None, 0.7)
    text_only = candidate(None, 1, 0.1)
    hits = fuse([vector_only, text_only, both], similarity_threshold=0.3, top_k=10)
    assert [hit.candidate for hit in hits] == [both, vector_only, text_only]
    assert hits[0].signals == (VECTOR, FULL_TEXT)
    assert hits[2].signals == (FULL_TEXT,)


def test_fusion_drops_weak_vector_only_matches_but_keeps_word_matches() -> None:
    weak = candidate(1, None, 0.2)
    worded = candidate(None, 3, 0.05)
    hits = fuse([weak, worded], similarity_threshold=0.3, top_k=10)
    assert [hit.candidate for hit in hits] == [worded]


def test_hybrid_fusion_counts_a_word_match_by_the_share_of_the_question_it_holds() -> None:
    # First in full-text search on one rare word of the question vs first in meaning.
    one_word = candidate(None, 1, 0.1, coverage=0.2)
    close_in_meaning = candidate(1, None, 0.6)
    hits = fuse([one_word, close_in_meaning], similarity_threshold=0.3, top_k=10)
    assert [hit.candidate for hit in hits] == [close_in_meaning, one_word]
    # Holding all of the question's words, it counts its signal's whole weight.
    every_word = candidate(None, 1, 0.1, coverage=1.0)
    hits = fuse([every_word, close_in_meaning], similarity_threshold=0.3, top_k=10)
    vector_weight, text_weight = FUSION_WEIGHTS["en"]
    by_chunk = {hit.candidate.chunk_id: hit.relevance for hit in hits}
    assert by_chunk[every_word.chunk_id] / by_chunk[close_in_meaning.chunk_id] == pytest.approx(
        text_weight / vector_weight
    )
    # Text-only mode ranks by full-text search alone.
    hits = fuse([one_word, every_word], 0.3, 10, RetrievalMode.TEXT)
    assert [hit.relevance for hit in hits] == [1.0, 1.0]


def test_documents_answer_unless_a_missing_word_names_a_thing_or_every_word_is_missing() -> None:
    assert documents_answer(Evidence(missing_term_share=0.3, missing_word_frequency=4.1))
    # "Kubernetes": a name the documents never mention.
    assert not documents_answer(Evidence(missing_term_share=0.3, missing_word_frequency=2.2))
    # Off every document's topic: they hold none of the question's words.
    assert not documents_answer(Evidence(missing_term_share=1.0, missing_word_frequency=5.0))


ranks = st.one_of(st.none(), st.integers(min_value=1, max_value=200))


coverages = st.floats(min_value=0.01, max_value=1)


@given(
    st.lists(st.tuples(ranks, ranks, st.floats(-1, 1), coverages), max_size=60),
    st.integers(1, 20),
)
def test_fusion_scores_are_bounded_sorted_and_cut_to_top_k(
    rows: list[tuple[int | None, int | None, float, float]], top_k: int
) -> None:
    candidates = [candidate(*row) for row in rows if row[0] is not None or row[1] is not None]
    hits = fuse(candidates, similarity_threshold=0.3, top_k=top_k)
    assert len(hits) <= top_k
    assert all(0 < hit.relevance <= 1 for hit in hits)
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    assert all(h.candidate.text_rank is not None or h.candidate.similarity >= 0.3 for h in hits)
