"""Prometheus metrics on METRICS_ADDRESS, scraped as Prometheus does after real calls."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatbot_client import ChatbotClient
from chatbot_client.errors import NotFoundError
from tests.databases import MigratedDatabase, free_port
from tests.documents_support import truncate_documents, upload_the_manual
from tests.polling import eventually
from tests.processes import ServerProcess
from tests.servers import server_settings, start_server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_rpcs_answers_ingestion_and_the_pool(
    database: MigratedDatabase, redis_url: str
) -> None:
    await truncate_documents(database.owner_url)
    running = await start_server(
        server_settings(database.app_url, redis_url, METRICS_ADDRESS="127.0.0.1:0")
    )
    try:
        assert running.server.metrics is not None
        url = running.server.metrics.url
        before = await scrape(url)
        async with ChatbotClient(running.address) as client:
            await upload_the_manual(client)
            await client.search("DMX input port")
            await client.answer("What does a blinking red status LED mean?")
            with pytest.raises(NotFoundError):
                await client.get_document("00000000-0000-4000-8000-000000000000")
        after = await scrape(url)
    finally:
        await running.stop()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    search = "/chatbot.v1.DocumentService/Search"
    get = "/chatbot.v1.DocumentService/GetDocument"
    answer = "/chatbot.v1.ChatService/StreamAnswer"
    assert moved("chatbot_rpcs_total", method=search, code="OK") == 1
    assert moved("chatbot_rpcs_total", method=get, code="NOT_FOUND") == 1
    assert moved("chatbot_rpcs_total", method=answer, code="OK") == 1
    assert moved("chatbot_rpc_duration_seconds_count", method=search) == 1
    assert value(after, "chatbot_rpcs_in_flight", method=answer) == 0
    assert moved("chatbot_answers_total", finish_reason="stop", grounding="answered") == 1
    assert moved("chatbot_answer_first_token_seconds_count", model="offline") == 1
    assert moved("chatbot_documents_processed_total", status="ready") == 1
    assert moved("chatbot_pages_processed_total") == 3
    assert moved("chatbot_chunks_processed_total") >= 3
    assert moved("chatbot_embedding_duration_seconds_count") >= 2  # the document, the query
    assert value(after, "chatbot_database_connections", state="open") >= 1
    assert value(after, "chatbot_database_connections", state="max") >= 1
    assert ("chatbot_ingestion_queue_depth", ()) in after


async def test_a_worker_process_serves_its_ingestion_metrics(
    database: MigratedDatabase, redis_url: str
) -> None:
    await truncate_documents(database.owner_url)
    address = f"127.0.0.1:{free_port()}"
    worker = ServerProcess(
        {"DATABASE_URL": database.app_url, "REDIS_URL": redis_url, "METRICS_ADDRESS": address},
        "worker",
    )
    await worker.start()
    try:
        await worker.wait_for_event("worker.started")
        samples = await eventually(lambda: scrape_if_up(f"http://{address}/metrics"))
    finally:
        await worker.kill()
    assert ("chatbot_ingestion_queue_depth", ()) in samples
    assert ("chatbot_database_connections", (("state", "open"),)) in samples


async def scrape_if_up(url: str) -> Samples | None:
    """The samples, or None while the endpoint is not listening yet."""
    try:
        return await scrape(url)
    except httpx.HTTPError:
        return None
