"""The `chatbot` command as an operator uses it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chatbot_client import ChatbotClient
from tests.commands import chatbot
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents, upload_the_manual
from tests.pdfs import text_pdf
from tests.servers import RunningServer


async def test_health_prints_status_and_exits_zero(server: RunningServer) -> None:
    code, out, err = await chatbot(server, "health")
    assert code == 0, err
    assert out.strip() == "SERVING"


async def test_health_names_the_error_for_an_unknown_service(server: RunningServer) -> None:
    code, _, err = await chatbot(server, "health", "chatbot.v1.Nope")
    assert code == 1
    assert "NOT_FOUND" in err


async def test_batch_upload_of_a_folder_with_progress_and_summary(
    server: RunningServer, database: MigratedDatabase, tmp_path: Path
) -> None:
    await truncate_documents(database.owner_url)
    (tmp_path / "manuals").mkdir()
    (tmp_path / "manuals" / "xpd42.pdf").write_bytes(manual_pdf())
    (tmp_path / "notes.PDF").write_bytes(text_pdf(["A note.", "Its second page."]))
    (tmp_path / "readme.txt").write_text("not a pdf, not uploaded")

    code, out, _ = await chatbot(server, "documents", "upload", str(tmp_path), "--dry-run")
    assert code == 0
    assert "2 files" in out and "nothing sent" in out
    code, out, _ = await chatbot(server, "documents", "list")
    assert out == ""

    code, out, err = await chatbot(
        server, "documents", "upload", str(tmp_path), "--process", "--tag", "batch"
    )
    assert code == 0, out + err
    assert "2/2" in err and "chunks " in err  # the bar followed WatchDocument's progress
    assert out.startswith("2 files: 2 stored; 5 pages, ")

    code, out, _ = await chatbot(server, "documents", "upload", str(tmp_path))
    assert out.startswith("2 files: 2 already stored; ")

    code, out, _ = await chatbot(server, "documents", "list", "--status", "ready")
    assert code == 0
    assert len(out.splitlines()) == 2
    assert "xpd42.pdf" in out

    code, out, _ = await chatbot(server, "search", "Which port takes the DMX cable?")
    assert code == 0
    assert "xpd42.pdf, p. 1 · Installation" in out

    code, out, _ = await chatbot(server, "documents", "reprocess-all", "--status", "ready")
    assert (code, out.strip()) == (0, "queued 2 documents")


async def test_upload_of_a_missing_path_is_one_line_and_exit_code_2(
    server: RunningServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pdf"
    code, _, err = await chatbot(server, "documents", "upload", str(missing))
    assert code == 2
    assert err.strip() == f"chatbot: {missing}: No such file or directory"


async def test_batch_upload_reports_documents_that_fail(
    server: RunningServer, database: MigratedDatabase, tmp_path: Path
) -> None:
    await truncate_documents(database.owner_url)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    code, out, _ = await chatbot(server, "documents", "upload", str(tmp_path), "--process")
    assert code == 1
    assert "failed: " in out and "broken.pdf" in out and "not a readable PDF" in out


async def test_ask_streams_the_answer_with_footnotes_and_conversations_list_it(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        await upload_the_manual(client)

    code, out, err = await chatbot(
        server, "ask", "What does a blinking red status LED mean?", "--session", "cli"
    )
    assert code == 0, err
    assert "blinks red" in out
    assert "[1] XPD-42 Manual, p. 3 · Troubleshooting" in out
    assert "offline" in err

    code, out, _ = await chatbot(server, "conversations", "list", "--session", "cli")
    assert code == 0
    (line,) = out.splitlines()
    conversation_id, _, rest = line.partition("  ")
    assert "2 messages" in rest and "blinking red" in rest

    code, out, _ = await chatbot(
        server, "conversations", "show", conversation_id, "--session", "cli"
    )
    assert "\nyou, " in out and ":\nWhat does a blinking red status LED mean?" in out
    assert "  [1] XPD-42 Manual, p. 3" in out

    code, out, _ = await chatbot(
        server, "conversations", "delete", conversation_id, "--session", "cli"
    )
    assert code == 0
    code, out, _ = await chatbot(server, "conversations", "list", "--session", "cli")
    assert out == ""


async def test_every_data_command_prints_json_that_parses(
    server: RunningServer, database: MigratedDatabase, tmp_path: Path
) -> None:
    await truncate_documents(database.owner_url)
    manual = tmp_path / "xpd42.pdf"
    manual.write_bytes(manual_pdf())

    async def as_json(*args: str) -> Any:
        code, out, err = await chatbot(server, *args, "--json")
        assert code == 0, err
        return json.loads(out)

    (uploaded,) = await as_json("documents", "upload", str(manual), "--process")
    assert uploaded["error"] == "" and uploaded["already_stored"] is False
    document_id = uploaded["document"]["document_id"]
    assert uploaded["document"]["status"] == "DOCUMENT_STATUS_READY"
    assert (await as_json("documents", "upload", str(tmp_path), "--dry-run"))[0]["size_bytes"] > 0
    assert [d["document_id"] for d in await as_json("documents", "list")] == [document_id]
    shown = await as_json("documents", "show", document_id)
    assert shown["page_count"] == 3 and shown["filename"] == "xpd42.pdf"
    hits = await as_json("search", "blinking red status LED")
    assert hits["results"][0]["page_number"] == 3
    answer = await as_json("ask", "What does a blinking red status LED mean?")
    elsewhere = await as_json("ask", "What does a blinking red status LED mean?", "--tag", "none")
    assert elsewhere["citations"] == [] and elsewhere["finished"]["grounding"] == "not_found"
    narrowed = await as_json(
        "ask", "What does a blinking red status LED mean?", "--document", document_id,
        "--top-k", "1",
    )  # fmt: skip
    assert [c["page_number"] for c in narrowed["citations"]] == [3]
    assert "blinks red" in answer["text"] and answer["finished"]["finish_reason"] == "stop"
    assert answer["citations"][0]["page_number"] == 3
    conversation_id = answer["started"]["conversation_id"]
    listed = await as_json("conversations", "list")
    assert conversation_id in [c["conversation_id"] for c in listed]
    shown_conversation = await as_json("conversations", "show", conversation_id)
    assert [m["role"] for m in shown_conversation["messages"]] == [
        "MESSAGE_ROLE_USER",
        "MESSAGE_ROLE_ASSISTANT",
    ]
    assert (await as_json("health"))["status"] == "SERVING"
    code, out, err = await chatbot(server, "documents", "watch", document_id, "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["document"]["status"] == "DOCUMENT_STATUS_READY"
    assert await as_json("conversations", "delete", conversation_id) == {"deleted": conversation_id}
    requeued = await as_json("documents", "reprocess", document_id)
    assert requeued["status"] in ("DOCUMENT_STATUS_PENDING", "DOCUMENT_STATUS_PROCESSING")
    assert await as_json("documents", "delete", document_id) == {"deleted": document_id}
    assert await as_json("documents", "list") == []


async def test_documents_show_is_readable(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        manual = await upload_the_manual(client)
    code, out, err = await chatbot(server, "documents", "show", manual.document_id)
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["Title"].strip() == "XPD-42 Manual"
    assert fields["Status"].strip() == "READY" and fields["Pages"].strip() == "3"
    assert fields["File"].strip().endswith("KB)")
    # Local wall-clock time, not epoch seconds.
    assert re.fullmatch(r" +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+", fields["Processed"])


async def test_errors_are_one_line_with_documented_exit_codes(server: RunningServer) -> None:
    code, out, err = await chatbot(server, "documents", "show", "not-a-uuid")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "INVALID_ARGUMENT" in err
    code, _, err = await chatbot(server, "documents", "upload", "/nonexistent/file.pdf")
    assert code == 2 and err.count("\n") == 1
    code, _, err = await chatbot("127.0.0.1:1", "--timeout", "2", "health")
    assert code == 3 and err.count("\n") == 1 and "UNAVAILABLE" in err
