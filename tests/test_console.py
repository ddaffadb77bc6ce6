"""The web console in a real browser (Debian's Chromium through Playwright), served by the
edge in front of a real server that answers through the fake model."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from chatbot.v1 import admin_service_pb2, chat_service_pb2
from chatbot.v1.admin_service_pb2_grpc import AdminServiceStub
from chatbot_client import ChatbotClient
from chatbot_client.errors import PermissionDeniedError
from chatbot_server.answers.fake_openai import FakeOpenAI, Reply
from chatbot_server.config import EdgeSettings
from chatbot_server.edge.envoy_config import envoy_config, parse_upstreams
from chatbot_server.edge.envoy_process import EdgeProcess
from tests.browser_support import SCREENSHOTS, chromium
from tests.databases import MigratedDatabase, create_test_database, free_port
from tests.documents_support import MANUAL_PAGES, upload_the_manual
from tests.edge_support import running_edge
from tests.governance_support import new_key
from tests.pdfs import make_pdf
from tests.servers import RunningServer, server_settings, start_server

ANONYMOUS_LIMIT = 40
WAIT_MS = 60_000


@dataclass
class Stack:
    url: str
    server: RunningServer
    fake: FakeOpenAI
    admin_secret: str


@pytest_asyncio.fixture(scope="module")
async def stack(postgres_superuser_url: str, redis_url: str) -> AsyncIterator[Stack]:
    database: MigratedDatabase = await create_test_database(
        postgres_superuser_url, "chatbot_console"
    )
    fake = FakeOpenAI()
    await fake.start()
    server = await start_server(
        server_settings(
            database.app_url,
            redis_url,
            OPENROUTER_API_KEY="sk-or-test",
            OPENROUTER_BASE_URL=fake.base_url,
            RATE_LIMIT_ENABLED="true",
            RATE_LIMIT_ANONYMOUS=f"{ANONYMOUS_LIMIT}/minute",
            RATE_LIMIT_BURST="1000/second",
            INGESTION_POLL_SECONDS="0.2",
            # Every question reaches the model, whatever the documents hold.
            SIMILARITY_THRESHOLD="0",
            # As in production: an answer whose reader left waits for a resume, so Stop
            # must cancel it on the server.
            ANSWER_RESUME_SECONDS="30",
        )
    )
    async with ChatbotClient(server.address) as client:
        await upload_the_manual(client)
    _, admin_secret = await new_key(database.app_url, "console-admin", "admin")
    async with running_edge([server.address]) as url:
        yield Stack(url, server, fake, admin_secret)
    await server.stop()
    await fake.stop()


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as opened:
        yield opened


def some_address() -> str:
    return f"2001:db8::{random.getrandbits(16):x}:{random.getrandbits(16):x}"


async def new_context(browser: Browser, address: str) -> BrowserContext:
    """A browser of its own, seen by the server at `address` (forwarded by the edge)."""
    return await browser.new_context(
        viewport={"width": 1100, "height": 900}, extra_http_headers={"x-forwarded-for": address}
    )


@pytest_asyncio.fixture
async def page(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    context = await new_context(browser, some_address())
    opened = await context.new_page()
    await opened.goto(stack.url + "/")
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        await opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    await context.close()


async def upload_manual(page: Page, tmp_path: Path, name: str) -> None:
    pdf = tmp_path / name
    pdf.write_bytes(make_pdf(MANUAL_PAGES) + f"\n% {name}\n".encode())
    await page.get_by_role("tab", name="Documents").click()
    await page.get_by_label("PDF files").set_input_files(str(pdf))
    await page.get_by_role("button", name="Upload", exact=True).click()
    upload = page.locator("li.upload", has_text=name)
    await expect(upload).to_have_class(re.compile(r"upload--ready"), timeout=WAIT_MS)
    await expect(upload.locator(".upload-status")).to_contain_text("Ready: 3 pages")


async def ask(page: Page, question: str) -> Locator:
    """Sends a question from the Chat tab; the answer's article."""
    await page.get_by_role("tab", name="Chat").click()
    await page.get_by_role("textbox", name="Question", exact=True).fill(question)
    await page.get_by_role("button", name="Send").click()
    return page.locator("article.answer").last


async def until_finished(answer: Locator) -> None:
    await expect(answer).to_have_attribute("aria-busy", "false", timeout=WAIT_MS)


async def admin_logs(stack: Stack) -> list[admin_service_pb2.AnswerLog]:
    async with grpc.aio.insecure_channel(stack.server.address) as channel:
        response = await AdminServiceStub(channel).ListAnswerLogs(
            admin_service_pb2.ListAnswerLogsRequest(page_size=100),
            metadata=(("authorization", f"Bearer {stack.admin_secret}"),),
        )
    return list(response.answer_logs)


async def test_a_pdf_uploaded_through_the_page_becomes_ready(page: Page, tmp_path: Path) -> None:
    await upload_manual(page, tmp_path, "xpd42.pdf")
    row = page.locator("tr.document", has_text="xpd42.pdf")
    await expect(row.locator(".status--ready")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_label("Bytes sent: xpd42.pdf")).to_have_js_property(
        "value", await page.get_by_label("Bytes sent: xpd42.pdf").evaluate("p => p.max")
    )


async def test_an_answer_streams_and_its_citation_opens_the_page(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    await upload_manual(page, tmp_path, "cited.pdf")
    pieces = ["Clean ", "the ", "air ", "intake ", "and ", "restart ", "the ", "unit ", "[1]."]
    stack.fake.replies = [Reply(pieces, piece_delay=0.4)]
    answer = await ask(page, "What does a blinking red LED mean?")

    text = answer.locator(".answer-text")
    await expect(text).to_contain_text("Clean the air", timeout=WAIT_MS)
    # The first words are on the page while the model is still writing.
    await expect(answer).to_have_attribute("aria-busy", "true")
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    assert "restart the unit" not in await text.inner_text()

    await until_finished(answer)
    await expect(text).to_contain_text("restart the unit")
    await answer.get_by_role("button", name="Source 1", exact=True).first.click()
    citation = answer.locator("li.citation").first
    await expect(citation).to_have_class(re.compile("citation--active"))
    await expect(citation.locator(".citation-page")).to_have_text("page 3")
    await expect(citation.locator(".citation-section")).to_contain_text("Troubleshooting")
    await expect(citation.locator("blockquote.citation-text")).to_contain_text("blinks red")


async def test_stopping_a_slow_answer_records_it_as_cancelled(page: Page, stack: Stack) -> None:
    stack.fake.replies = [Reply([f"word{n} " for n in range(40)], piece_delay=0.5)]
    question = f"Tell me everything, slowly ({random.random()})"
    answer = await ask(page, question)
    await expect(answer.locator(".answer-text")).to_contain_text("word1", timeout=WAIT_MS)
    await page.get_by_role("button", name="Stop").click()
    await until_finished(answer)
    await expect(answer).to_have_class(re.compile("answer--stopped"))

    logs: list[admin_service_pb2.AnswerLog] = []
    for _ in range(50):
        logs = [log for log in await admin_logs(stack) if log.question == question]
        if logs:
            break
        await page.wait_for_timeout(100)
    assert [log.finish_reason for log in logs] == [chat_service_pb2.FINISH_REASON_CANCELLED]


async def test_the_admin_view_charts_what_answers_cost(page: Page, stack: Stack) -> None:
    stack.fake.report_cost = 0.0125
    try:
        for n in range(2):
            stack.fake.replies = [Reply(["Costly ", "answer."])]
            await until_finished(await ask(page, f"A question that costs money {n}"))
    finally:
        stack.fake.report_cost = None

    await page.get_by_label("API key").fill(stack.admin_secret)
    await page.get_by_role("tab", name="Admin").click()
    await expect(page.get_by_role("img", name=re.compile("Spend per day"))).to_be_visible(
        timeout=WAIT_MS
    )
    by_model = page.get_by_role("table", name="Spend by model")
    await expect(by_model).to_contain_text("gpt-4o-mini")
    cost = float(re.findall(r"\$(\d+\.\d+)", await by_model.inner_text())[0])
    assert cost >= 0.025
    await expect(page.get_by_label("Budget used")).to_be_visible()


async def test_the_admin_view_lists_the_audit_trail(page: Page, stack: Stack) -> None:
    name = f"audited-{random.getrandbits(32):x}"
    async with ChatbotClient(stack.server.address, api_key=stack.admin_secret) as client:
        created = await client.create_api_key(name, admin_service_pb2.API_KEY_ROLE_CLIENT)
    # A client key may not make keys: the attempt is refused, and audited under its name.
    async with ChatbotClient(stack.server.address, api_key=created.secret) as client:
        with pytest.raises(PermissionDeniedError):
            await client.create_api_key(f"{name}-never", admin_service_pb2.API_KEY_ROLE_CLIENT)

    await page.get_by_label("API key").fill(stack.admin_secret)
    await page.get_by_role("tab", name="Admin").click()
    trail = page.get_by_role("table", name="Audit trail")
    made = trail.locator("[data-outcome=ok]", has_text="CreateApiKey").filter(has_text=name)
    refused = trail.locator("[data-outcome=refused]", has_text="CreateApiKey").filter(has_text=name)
    others = trail.locator("[data-testid=audit-row]:not([data-outcome=refused])")
    await expect(made).to_have_count(1, timeout=WAIT_MS)
    await expect(made.locator(".badge")).to_have_text("OK")
    await expect(made).to_contain_text("console-admin")
    await expect(refused).to_have_count(1)
    await expect(refused.locator(".badge")).to_have_text("Refused")
    await expect(refused).to_contain_text("PERMISSION_DENIED")
    # Newest first: the refusal came after the key was made.
    order = await trail.get_by_test_id("audit-row").evaluate_all(
        "rows => rows.map(row => row.dataset.auditEventId)"
    )
    refused_id = await refused.get_attribute("data-audit-event-id")
    made_id = await made.get_attribute("data-audit-event-id")
    assert order.index(refused_id) < order.index(made_id)

    await page.locator("#audit-outcome").select_option(label="Refused")
    await page.get_by_test_id("audit-apply").click()
    await expect(others).to_have_count(0, timeout=WAIT_MS)
    await expect(page.get_by_test_id("audit-body")).to_have_attribute("aria-busy", "false")
    await expect(refused).to_have_count(1)


async def test_each_browser_behind_the_edge_has_limits_of_its_own(
    browser: Browser, stack: Stack
) -> None:
    busy = await new_context(browser, some_address())
    calm = await new_context(browser, some_address())
    try:
        page = await busy.new_page()
        await page.goto(stack.url + "/")
        stack.fake.replies = [Reply(["ok"]) for _ in range(ANONYMOUS_LIMIT + 5)]
        refusal = ""
        for n in range(ANONYMOUS_LIMIT):
            answer = await ask(page, f"question {n}")
            await until_finished(answer)
            refusal = " ".join(await answer.locator(".answer-error").all_inner_texts())
            if refusal.strip():
                break
        assert re.search(r"Rate limited, retry in \d+ s", refusal), refusal

        other = await calm.new_page()
        await other.goto(stack.url + "/")
        stack.fake.replies = [Reply(["Still ", "served."])]
        answer = await ask(other, "Am I limited too?")
        await expect(answer.locator(".answer-text")).to_contain_text(
            "Still served", timeout=WAIT_MS
        )
    finally:
        await busy.close()
        await calm.close()


async def test_an_answer_resumes_after_the_connection_breaks(
    browser: Browser, stack: Stack
) -> None:
    web_address = f"127.0.0.1:{free_port()}"
    config = envoy_config(
        EdgeSettings(web_address=web_address), parse_upstreams(stack.server.address)
    )
    edge = await EdgeProcess.start(config, web_address)
    context = await new_context(browser, some_address())
    try:
        page = await context.new_page()
        await page.goto(f"http://{web_address}/")
        pieces = [f"part{n} " for n in range(16)]
        stack.fake.replies = [Reply(pieces, piece_delay=0.3)]
        answer = await ask(page, "What does a blinking red LED mean, in many parts?")
        await expect(answer.locator(".answer-text")).to_contain_text("part2", timeout=WAIT_MS)
        # The edge goes away mid-answer and comes back: a network blip.
        await edge.stop()
        edge = await EdgeProcess.start(config, web_address)
        await until_finished(answer)
        await expect(answer.locator(".answer-text")).to_have_text("".join(pieces).strip())
        await expect(answer).not_to_have_class(re.compile("answer--(failed|stopped)"))
    finally:
        await context.close()
        await edge.stop()
