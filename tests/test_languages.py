"""Documents and questions in English, German and French: languages detected, full text
prepared per language (German compounds, French elisions and accents), the vector signal
across languages, answers and notices in the question's language, and stored rows of a
previous embedding model reported and carried over."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot.v1 import common_pb2
from chatbot.v1 import document_service_pb2 as pb
from chatbot_client import ChatbotClient
from chatbot_server.documents.page_cleaning import clean_glyphs
from chatbot_server.retrieval.languages import (
    COMMON,
    RARITY_FLOOR,
    compound_parts,
    rarest_word_frequency,
    search_text,
    vocabulary,
    word_frequency,
    words_of,
)
from tests.conftest import LogSink
from tests.databases import MigratedDatabase, create_test_database
from tests.documents_support import truncate_documents, wait_until_final
from tests.pdfs import text_pdf
from tests.servers import RunningServer, server_settings, start_server

GERMAN_PAGES = [
    "Allgemeines zum Gerät. Jede Datei wird im Ordner Dokumente gespeichert. Die "
    "Konfiguration erfolgt über das Menü am Bildschirm, der Drucker wird automatisch erkannt.",
    "Die Druckerkonfigurationsdatei liegt im Verzeichnis /etc/drucker und wird beim Start "
    "des Dienstes gelesen.",
    "Um das Passwort zu ändern, öffnen Sie die Einstellungen, wählen Sie Sicherheit und "
    "geben Sie das alte und das neue Kennwort ein.",
    "Reinigen Sie den Wassertank einmal pro Woche mit warmem Wasser und etwas Essig.",
]
FRENCH_PAGES = [
    "L\u2019installation du paquet se fait avec la commande apt, puis le système redémarre le "
    "service d\u2019impression.",
    "Pour sauvegarder vos données, copiez le répertoire personnel sur un disque externe "
    "chaque semaine.",
    "Le voyant rouge clignote lorsque la batterie est presque vide ; branchez le chargeur.",
]


def test_german_compounds_split_into_the_parts_the_document_uses() -> None:
    words = vocabulary(["die Datei", "der Drucker", "Konfiguration", "Schule", "Server"])
    assert compound_parts("druckerkonfigurationsdatei", words) == [
        "drucker",
        "konfiguration",
        "datei",
    ]
    assert compound_parts("schulservers", words) == ["schule", "server"]
    assert compound_parts("beispiel", words) == []


@given(st.text())
def test_compound_parts_are_words_of_the_vocabulary(text: str) -> None:
    words = vocabulary([text, "Datei System Konfiguration"])
    for word in text.lower().split():
        assert set(compound_parts(word, words)) <= words


def test_a_missing_word_that_names_a_thing_is_rare_in_everyday_language() -> None:
    question = "How do I deploy R on Kubernetes with the usual libraries?"
    missing = words_of(question, ["kubernet", "librari"])
    assert missing == ["Kubernetes", "libraries"]
    assert word_frequency("Kubernetes", "en") < 2.6 < word_frequency("libraries", "en")
    assert rarest_word_frequency(missing, "en") == word_frequency("Kubernetes", "en")
    assert rarest_word_frequency([], "en") == COMMON
    assert word_frequency("debcargo", "de") == RARITY_FLOOR


def test_a_german_compound_is_as_common_as_its_least_common_part() -> None:
    assert word_frequency("Prozessortakt", "de") == min(
        word_frequency("Prozessor", "de"), word_frequency("Takt", "de")
    )
    # With a linking "s" and a compound as its first part.
    assert word_frequency("Druckerkonfigurationsdatei", "de") > 3
    assert word_frequency("Keycloakserver", "de") < 2.6


def test_french_text_loses_elisions_and_accents_for_full_text() -> None:
    assert search_text("L\u2019installation d'un système", "fr") == "installation un systeme"


def test_accents_set_apart_by_tex_are_joined_to_their_letters() -> None:
    assert clean_glyphs("Exp\u00b4eriences apr`es k¨onnen fran\u00b8cais `a `echo`") == (
        "Expériences après können français à `echo`"
    )


@pytest.fixture
async def multilingual_client(server: RunningServer, database: MigratedDatabase) -> ChatbotClient:
    """A client of a server holding one German and one French manual, languages detected."""
    await truncate_documents(database.owner_url)
    client = ChatbotClient(server.address, timeout=30)
    for pages, name in ((GERMAN_PAGES, "geraet.pdf"), (FRENCH_PAGES, "appareil.pdf")):
        uploaded = await client.upload_document(text_pdf(pages), filename=name)
        ready = await wait_until_final(client, uploaded.document.document_id)
        assert ready.status == pb.DOCUMENT_STATUS_READY
    return client


async def test_languages_are_detected_for_documents_and_questions(
    multilingual_client: ChatbotClient,
) -> None:
    async with multilingual_client as client:
        listed = await client.documents.ListDocuments(pb.ListDocumentsRequest(), timeout=10)
        found = {
            question: (await client.search(question)).query_language
            for question in ("Wo liegt die Datei?", "Où est le voyant ?", "Where is the file?")
        }
    assert sorted(d.language for d in listed.documents) == ["de", "fr"]
    assert list(found.values()) == ["de", "fr", "en"]


async def test_a_german_question_finds_a_compound_by_its_part(
    multilingual_client: ChatbotClient,
) -> None:
    async with multilingual_client as client:
        found = await client.search(
            "Wo liegt die Datei für den Drucker?", mode=common_pb2.RETRIEVAL_MODE_TEXT
        )
    assert found.results[0].page_number == 2
    assert found.results[0].term_coverage > 0.5


async def test_a_french_question_with_an_elision_and_no_accents_finds_its_passage(
    multilingual_client: ChatbotClient,
) -> None:
    async with multilingual_client as client:
        found = await client.search(
            "Comment se passe l'installation du paquet sur le systeme ?",
            mode=common_pb2.RETRIEVAL_MODE_TEXT,
        )
    assert found.results[0].document_title == "appareil.pdf"
    assert found.results[0].page_number == 1


async def test_an_english_question_finds_a_german_passage(
    multilingual_client: ChatbotClient,
) -> None:
    async with multilingual_client as client:
        found = await client.search("How do I change my password?")
        text_only = await client.search(
            "How do I change my password?", mode=common_pb2.RETRIEVAL_MODE_TEXT
        )
    assert (found.results[0].document_title, found.results[0].page_number) == ("geraet.pdf", 3)
    assert list(found.results[0].signals) == [common_pb2.RETRIEVAL_SIGNAL_VECTOR]
    # Full text looks only in documents written in the question's language.
    assert list(text_only.results) == []


async def test_answers_and_notices_speak_the_questions_language(
    multilingual_client: ChatbotClient,
) -> None:
    async with multilingual_client as client:
        german = await client.answer("Wer hat die Fußball-Weltmeisterschaft 2014 gewonnen?")
        french = await client.answer("Qui a gagné la coupe du monde de football en 2014 ?")
        found = await client.answer("Que faire quand le voyant rouge clignote ?")
    assert german.text == "Die Dokumente beantworten diese Frage nicht."
    assert french.text == "Les documents ne répondent pas à cette question."
    for silent in (german, french):
        assert silent.finished is not None and silent.finished.grounding == "not_found"
        assert silent.citations == ()
    assert found.text.startswith("D'après les documents :")
    assert found.finished is not None and found.finished.grounding == "answered"
    assert any("hors ligne" in warning for warning in found.finished.warnings)
    assert found.citations[0].page_number == 3


async def test_a_question_naming_what_the_documents_lack_is_not_found_on_their_topic(
    multilingual_client: ChatbotClient,
) -> None:
    """On the manuals' own topic: a name they never mention ("Keycloak", "Zigbee") is not
    found; everyday words they do not use ("sauber", "prévenir") still get an answer."""
    async with multilingual_client as client:
        answers = {
            question: await client.answer(question)
            for question in (
                "Wie melde ich mich am Drucker mit Keycloak an?",
                "Comment relier l'appareil à une passerelle Zigbee ?",
                "Wie oft mache ich den Wassertank sauber?",
                "Le voyant rouge clignote, comment prévenir la panne ?",
            )
        }
    groundings = [
        a.finished.grounding if a.finished is not None else None for a in answers.values()
    ]
    assert groundings == ["not_found", "not_found", "answered", "answered"]


async def test_a_word_only_another_languages_manual_holds_is_not_missing(
    multilingual_client: ChatbotClient,
) -> None:
    """The German manual holds "Einstellungen" (stemmed as German does), a word rare in French:
    a French question naming it is answered, not marked not found."""
    async with multilingual_client as client:
        answer = await client.answer(
            "Que faire quand le voyant rouge clignote dans les Einstellungen ?", language="fr"
        )
    assert answer.finished is not None and answer.finished.grounding == "answered"


async def test_documents_of_a_previous_model_are_reported_and_carried_over(
    postgres_superuser_url: str, redis_url: str, log_sink: LogSink
) -> None:
    database = await create_test_database(postgres_superuser_url, f"models_{uuid.uuid4().hex[:8]}")
    old = await start_server(
        server_settings(database.app_url, redis_url, EMBEDDING_LOCAL_MODEL="all-MiniLM-L6-v2-int8")
    )
    try:
        async with ChatbotClient(old.address, timeout=30) as client:
            uploaded = await client.upload_document(text_pdf(GERMAN_PAGES), filename="alt.pdf")
            stored = await wait_until_final(client, uploaded.document.document_id)
    finally:
        await old.stop()
    assert stored.embedding_model == "all-MiniLM-L6-v2-int8"

    reported_before = len(log_sink.events("documents.need_reprocessing"))
    new = await start_server(server_settings(database.app_url, redis_url))
    try:
        reported = log_sink.events("documents.need_reprocessing")[reported_before:]
        assert [(e["documents"], e["by_model"]) for e in reported] == [
            (1, {"all-MiniLM-L6-v2-int8": 1})
        ]
        async with ChatbotClient(new.address, timeout=30) as client:
            # Until reprocessed, the old vectors are not compared with the new model's.
            vector = await client.search("Passwort ändern", mode=common_pb2.RETRIEVAL_MODE_VECTOR)
            assert list(vector.results) == []
            assert await client.reprocess_all_documents() == 1
            carried = await wait_until_final(client, stored.document_id)
            vector = await client.search("Passwort ändern", mode=common_pb2.RETRIEVAL_MODE_VECTOR)
    finally:
        await new.stop()
    assert carried.embedding_model == "use-multilingual-v3"
    assert carried.language == "de"
    assert vector.results[0].page_number == 3
