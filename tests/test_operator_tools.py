"""The server as an operator drives it: grpcurl over reflection, buf on the contract."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from tests.commands import ROOT, grpcurl, tool
from tests.servers import RunningServer


async def test_grpcurl_lists_the_services_health_and_reflection(server: RunningServer) -> None:
    listed = set((await grpcurl(server.address, "list")).split())
    assert {
        "chatbot.v1.ChatService",
        "chatbot.v1.DocumentService",
        "chatbot.v1.AdminService",
        "grpc.health.v1.Health",
    } <= listed
    assert any(name.startswith("grpc.reflection.") for name in listed)


async def test_buf_curl_calls_through_reflection_v1_and_v1alpha(server: RunningServer) -> None:
    for protocol in ("grpc-v1", "grpc-v1alpha"):
        process = await asyncio.create_subprocess_exec(
            tool("buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
            "--reflect-protocol", protocol,
            f"http://{server.address}/grpc.health.v1.Health/Check",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, (protocol, err.decode())
        assert '"status": "SERVING"' in out.decode(), protocol
    listed = set((await grpcurl(server.address, "list")).split())
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= (
        listed
    )


async def test_grpcurl_describe_shows_the_contract_comments(server: RunningServer) -> None:
    service = await grpcurl(server.address, "describe", "chatbot.v1.ChatService")
    assert "// Answers questions from the stored documents" in service
    assert "rpc StreamAnswer ( .chatbot.v1.StreamAnswerRequest ) returns ( stream" in service
    message = await grpcurl(server.address, "describe", "chatbot.v1.Citation")
    assert "// 1-based page of the PDF where the cited text starts." in message


async def test_grpcurl_health_check_reports_serving(server: RunningServer) -> None:
    out = await grpcurl(server.address, "grpc.health.v1.Health/Check")
    assert '"status": "SERVING"' in out


def test_buf_lint_passes() -> None:
    result = subprocess.run([tool("buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_a_removed_field(tmp_path: Path) -> None:
    changed = tmp_path / "workspace"
    shutil.copytree(ROOT / "proto", changed / "proto")
    shutil.copytree(ROOT / "third_party", changed / "third_party")
    shutil.copy(ROOT / "buf.yaml", changed / "buf.yaml")
    common = changed / "proto" / "chatbot" / "v1" / "common.proto"
    text = common.read_text()
    assert "  double relevance_score = 8;\n}" in text
    common.write_text(text.replace("  double relevance_score = 8;\n}", "}"))

    unchanged = subprocess.run(
        [tool("buf"), "breaking", str(ROOT), "--against", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    broken = subprocess.run(
        [tool("buf"), "breaking", str(changed), "--against", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert broken.returncode != 0
    assert "relevance_score" in broken.stdout + broken.stderr


def test_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_protos.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
