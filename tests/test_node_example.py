"""The Node example of the README streams an answer, with the proto files as its only
knowledge of the service (Node and npm from Debian's packages in CI)."""

from __future__ import annotations

import shutil

import pytest

from chatbot_client import ChatbotClient
from tests.commands import in_node_example
from tests.databases import MigratedDatabase
from tests.documents_support import truncate_documents, upload_the_manual
from tests.servers import RunningServer


@pytest.mark.skipif(
    shutil.which("node") is None, reason="needs node and npm (apt-get install nodejs npm)"
)
async def test_the_node_example_streams_an_answer_with_citations(
    server: RunningServer, database: MigratedDatabase
) -> None:
    await truncate_documents(database.owner_url)
    async with ChatbotClient(server.address) as client:
        await upload_the_manual(client)
    code, _, err = await in_node_example("npm", "ci", "--silent", "--no-audit", "--no-fund")
    assert code == 0, err
    code, out, err = await in_node_example(
        "node", "ask.js", "--target", server.address, "--top-k", "1",
        "What does a blinking red status LED mean?",
    )  # fmt: skip
    assert code == 0, err
    assert "blinks red" in out
    assert "[1] XPD-42 Manual, p. 3" in out
    assert "finish_reason=FINISH_REASON_STOP grounding=GROUNDING_ANSWERED" in err
    # keepCase: top_k reaches the server (dropped, it would be the default of 10 results);
    # longs: String: took_ms, an int64, arrives as a string.
    query = "status LED, DMX port and firmware of the XPD-42"
    async with ChatbotClient(server.address) as client:
        assert len((await client.search(query)).results) > 1
    code, out, err = await in_node_example(
        "node", "search.js", "--target", server.address, "--top-k", "1", query
    )
    assert code == 0, err
    assert len(out.splitlines()) == 1 and "results in" in err and "(string)" in err
    code, _, err = await in_node_example("node", "ask.js", "--target", "127.0.0.1:1", "anything")
    assert code == 1 and "UNAVAILABLE" in err
