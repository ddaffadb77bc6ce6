"""Retrieval quality: clean extraction, sections where they really start, metadata titles,
retrieval modes, exact word statistics, and answers that say when the documents are silent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import grpc
import pymupdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_server.documents.page_cleaning import clean_glyphs
from chatbot_server.documents.pdf_extraction import extract_document
from tests.databases import MigratedDatabase
from tests.documents_support import (
    manual_pdf,
    truncate_documents,
    upload_the_manual,
    wait_until_final,
)
from tests.servers import RunningServer

WORDS = ["valve", "pressure", "sensor", "bracket", "cable", "filter", "gasket", "module"]
SPLIT_WORDS = ["commands", "calibration", "maintenance", "temperature", "configuration"]


def manual_with_boilerplate(pages: int, header: str, footer: str, seed: int) -> bytes:
    """Pages with a running header and footer (page number inside), body lines, and one
    word per page split by a line-end hyphen."""
    document = pymupdf.open()
    for number in range(1, pages + 1):
        page = document.new_page()
        page.insert_text((72, 40), f"{header} {number}", fontsize=9)
        split = SPLIT_WORDS[(seed + number) % len(SPLIT_WORDS)]
        cut = len(split) // 2
        body = [
            f"Page {number} explains the {WORDS[(seed + number) % len(WORDS)]} and its",
            f"routine checks before the service {split[:cut]}-",
            f"{split[cut:]} are run by the technician on site.",
        ]
        for line_number, line in enumerate(body):
            page.insert_text((72, 120 + 14 * line_number), line, fontsize=11)
        page.insert_text((72, page.rect.height - 30), f"{footer} Page {number} of {pages}")
    return bytes(document.tobytes())


@settings(max_examples=15, deadline=None)
@given(
    pages=st.integers(min_value=3, max_value=12),
    header=st.sampled_from(["Acme Pump Guide", "XR-7 Service Manual", "Handbook v2.1"]),
    footer=st.sampled_from(["Company Confidential", "User Guide Chapter 3", "Rev B"]),
    seed=st.integers(min_value=0, max_value=100),
)
def test_extraction_drops_running_headers_footers_and_joins_hyphenated_words(
    pages: int, header: str, footer: str, seed: int
) -> None:
    extracted = extract_document(manual_with_boilerplate(pages, header, footer, seed), 100)
    text = "\n".join(block.text for block in extracted.blocks)
    assert header not in text and footer not in text and " of " not in text
    for number in range(1, pages + 1):
        split = SPLIT_WORDS[(seed + number) % len(SPLIT_WORDS)]
        page_text = " ".join(b.text for b in extracted.blocks if b.page_number == number)
        assert f"service {split} are run" in page_text
        assert page_text.startswith(f"Page {number} explains")


@given(st.text())
def test_glyph_cleaning_leaves_no_control_or_unmapped_characters(text: str) -> None:
    cleaned = clean_glyphs(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\ufffd" for c in cleaned)
    assert "  " not in cleaned and cleaned == cleaned.strip()


def test_glyph_cleaning_maps_ligatures_and_drops_unmapped_bullets() -> None:
    assert clean_glyphs("\x88 e\ufb03cient \ufb01le\u00ad") == "efficient file"


def test_tables_of_contents_and_indexes_are_not_indexed() -> None:
    document = pymupdf.open()
    contents = document.new_page()
    contents.insert_text((72, 80), "Contents", fontsize=14)
    for number, entry in enumerate(["Installation", "Pressure checks", "Gasket repair"]):
        contents.insert_text((72, 110 + 16 * number), f"{entry} . . . . . . . . . {number + 2}")
    body = document.new_page()
    body.insert_text((72, 100), "Install the pump on a level floor.", fontsize=11)
    body.insert_text((72, 130), "See also the index . . . . . . . 12, 14", fontsize=11)
    extracted = extract_document(bytes(document.tobytes()), 100)
    assert [(b.page_number, b.text) for b in extracted.blocks] == [
        (2, "Install the pump on a level floor.")
    ]
    assert extracted.warnings == []


def outlined_pdf() -> bytes:
    """Page 2 holds the end of one section, a part title set on two lines, and a second
    titled section further down; the outline names both."""
    document = pymupdf.open()
    first = document.new_page()
    first.insert_text((72, 100), "Introduction to the pump and what it does.", fontsize=11)
    second = document.new_page()
    second.insert_text((72, 100), "The introduction ends with a word on safety.", fontsize=11)
    second.insert_text((72, 160), "Part V", fontsize=16)
    second.insert_text((72, 182), "Bugs", fontsize=16)
    second.insert_text((72, 210), "Report bugs to the maintainers by mail.", fontsize=11)
    second.insert_text((72, 300), "5.1 Known problems", fontsize=14)
    second.insert_text((72, 325), "The gasket may leak when cold.", fontsize=11)
    second.insert_text((72, 400), "print(pump.status)", fontname="cour", fontsize=10)
    second.insert_text((72, 412), "pump.reset()", fontname="cour", fontsize=10)
    document.set_toc([[1, "Introduction", 1], [1, "Part V Bugs", 2], [2, "5.1 Known problems", 2]])
    document.set_metadata({"title": "Pump Handbook"})
    return bytes(document.tobytes())


def test_outline_titles_start_where_they_appear_even_across_lines() -> None:
    extracted = extract_document(outlined_pdf(), 100)
    section_of = {block.text.split("\n")[0]: block.section_title for block in extracted.blocks}
    assert section_of["The introduction ends with a word on safety."] == "Introduction"
    assert section_of["Report bugs to the maintainers by mail."] == "Part V Bugs"
    assert section_of["The gasket may leak when cold."] == "5.1 Known problems"
    code = next(b.text for b in extracted.blocks if "pump.reset()" in b.text)
    assert code == "print(pump.status)\npump.reset()"
    assert extracted.title == "Pump Handbook"


async def test_metadata_title_replaces_the_file_name_but_not_a_given_title(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    data = outlined_pdf()
    async with ChatbotClient(server.address, timeout=30) as client:
        uploaded = await client.upload_document(data, filename="scan_0042.pdf")
        assert uploaded.document.title == "scan_0042.pdf"
        ready = await wait_until_final(client, uploaded.document.document_id)
        assert ready.title == "Pump Handbook"
        again = await client.upload_document(data, title="Given title", overwrite=True)
        ready = await wait_until_final(client, again.document.document_id)
        assert ready.title == "Given title"


@asynccontextmanager
async def only_the_manual(
    server: RunningServer, database: MigratedDatabase
) -> AsyncIterator[ChatbotClient]:
    """A client of a server whose only document is the READY sample manual."""
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address, timeout=30) as client:
        await upload_the_manual(client)
        yield client


async def test_search_modes_use_only_their_signal_and_report_ranks(
    server: RunningServer, database: MigratedDatabase
) -> None:
    async with only_the_manual(server, database) as client:
        question = "What should I do when the status LED blinks red?"
        text = await client.search(question, mode=common_pb2.RETRIEVAL_MODE_TEXT)
        vector = await client.search(question, mode=common_pb2.RETRIEVAL_MODE_VECTOR)
        hybrid = await client.search(question)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.documents.Search(pb.SearchRequest(query=question, mode=7), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for response, signal in (
        (text, common_pb2.RETRIEVAL_SIGNAL_FULL_TEXT),
        (vector, common_pb2.RETRIEVAL_SIGNAL_VECTOR),
    ):
        assert response.results[0].page_number == 3
        assert all(list(hit.signals) == [signal] for hit in response.results)
    assert [hit.text_rank for hit in text.results] == list(range(1, len(text.results) + 1))
    assert all(hit.vector_rank == 0 for hit in text.results)
    best = hybrid.results[0]
    assert best.page_number == 3 and best.vector_rank == 1 and best.text_rank == 1
    assert best.term_coverage > 0.5


async def test_a_section_title_lends_its_meaning_to_the_chunks_under_it(
    server: RunningServer, database: MigratedDatabase
) -> None:
    # Both passages say nearly the same; only the outline tells what each page is about.
    document = pymupdf.open()
    for text in (
        "Press the right button twice and wait until the lamp on the device turns blue.",
        "Press the left button twice and wait until the lamp on the device turns green.",
    ):
        document.new_page().insert_text((72, 100), text, fontsize=11)
    document.set_toc(
        [[1, "Cleaning the water filter", 1], [1, "Connecting to a wireless network", 2]]
    )
    pdf = bytes(document.tobytes())
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address, timeout=30) as client:
        uploaded = await client.upload_document(pdf, filename="appliance.pdf")
        await wait_until_final(client, uploaded.document.document_id)
        found = await client.documents.Search(
            pb.SearchRequest(
                query="How do I get the device online over Wi-Fi?",
                mode=common_pb2.RETRIEVAL_MODE_VECTOR,
                similarity_threshold=0.01,
            ),
            timeout=10,
        )
    first, second = found.results
    assert first.section_title == "Connecting to a wireless network"
    # Its own words are a little farther from the question than the other passage's.
    assert first.vector_similarity < second.vector_similarity


async def derived_row_mismatches(owner_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(owner_url)
    try:
        return await conn.fetch(
            """
            WITH actual AS (
                SELECT lexeme, count(*) AS chunks
                FROM chunks, unnest(tsvector_to_array(content_tsv)) AS lexeme GROUP BY lexeme
            )
            SELECT coalesce(a.lexeme, s.lexeme) AS lexeme, a.chunks AS actual, s.chunks AS kept
            FROM actual a FULL JOIN (SELECT * FROM lexeme_stats WHERE chunks <> 0) s
                ON s.lexeme = a.lexeme
            WHERE a.chunks IS DISTINCT FROM s.chunks
            UNION ALL
            SELECT 'chunk total', (SELECT count(*) FROM chunks), chunks FROM chunk_totals
            WHERE chunks <> (SELECT count(*) FROM chunks)
            UNION ALL
            -- One section embedding per section title of a document's chunks, no other.
            SELECT 'section ' || coalesce(t.title, s.title), NULL, NULL
            FROM (SELECT DISTINCT document_id, section_title AS title FROM chunks
                  WHERE section_title <> '') t
            FULL JOIN section_embeddings s USING (document_id, title)
            WHERE t.title IS NULL OR s.title IS NULL
            """
        )
    finally:
        await conn.close()


async def test_word_statistics_and_sections_stay_exact_through_upload_reprocess_and_delete(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address, timeout=30) as client:
        manual = await client.upload_document(manual_pdf(), title="XPD-42 Manual")
        other = await client.upload_document(outlined_pdf(), filename="pump.pdf")
        for uploaded in (manual, other):
            await wait_until_final(client, uploaded.document.document_id)
        assert await derived_row_mismatches(database.owner_url) == []
        await client.reprocess_document(manual.document.document_id)
        await wait_until_final(client, manual.document.document_id)
        assert await derived_row_mismatches(database.owner_url) == []
        await client.delete_document(other.document.document_id)
        assert await derived_row_mismatches(database.owner_url) == []


async def test_offline_answer_says_not_found_for_a_question_the_documents_do_not_answer(
    server: RunningServer, database: MigratedDatabase
) -> None:
    async with only_the_manual(server, database) as client:
        answers = {}
        for question in (
            "Who won the football world cup in 2014?",
            "Where do I connect the DMX input cable?",
        ):
            answers[question] = await client.answer(question)
    silent = answers["Who won the football world cup in 2014?"]
    assert silent.text == "The documents do not answer this question."
    assert silent.finished is not None and silent.finished.grounding == "not_found"
    assert silent.citations == ()
    found = answers["Where do I connect the DMX input cable?"]
    assert "Connect the DMX input cable to port 1" in found.text and "[1]" in found.text
    assert found.finished is not None and found.finished.grounding == "answered"
    conn = await asyncpg.connect(database.owner_url)
    try:
        logged = await conn.fetch(
            "SELECT grounding FROM answer_logs WHERE request_id = ANY($1::text[])",
            [answer.started.request_id for answer in answers.values() if answer.started],
        )
    finally:
        await conn.close()
    assert sorted(r["grounding"] for r in logged) == ["answered", "not_found"]
