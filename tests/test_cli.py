"""The `chatbot` command as an operator uses it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from chatbot_client import ChatbotClient
from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents
from tests.pdfs import text_pdf
from tests.servers import RunningServer


async def chatbot(
    server: RunningServer, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs `chatbot --target SERVER ARGS`, without CHATBOT_API_KEY unless `env` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "CHATBOT_API_KEY"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatbot_client", "--target", server.address, *args,
        env={**environment, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
    assert "2/2" in err
    assert "documents: 2 uploaded, 0 already stored, 0 failed; pages: 5; chunks:" in out

    code, out, _ = await chatbot(server, "documents", "upload", str(tmp_path))
    assert "documents: 2 uploaded, 2 already stored, 0 failed" in out

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
        uploaded = await client.upload_document(manual_pdf(), title="XPD-42 Manual")
        await asyncio.wait_for(client.wait_for_document(uploaded.document.document_id), 120)

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
    assert "you: What does a blinking red status LED mean?" in out
    assert "  [1] XPD-42 Manual, p. 3" in out

    code, out, _ = await chatbot(
        server, "conversations", "delete", conversation_id, "--session", "cli"
    )
    assert code == 0
    code, out, _ = await chatbot(server, "conversations", "list", "--session", "cli")
    assert out == ""
