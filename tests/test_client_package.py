"""The `chatbot-client` wheel installed alone into fresh virtual environments, on each
available Python, and used against a real server as a downstream program would."""

from __future__ import annotations

import asyncio
import glob
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import MigratedDatabase
from tests.documents_support import manual_pdf, truncate_documents
from tests.processes import run_process
from tests.servers import RunningServer

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = Path(__file__).resolve().parent / "downstream" / "uses_the_client.py"
CLIENT_DEPENDENCIES = {"chatbot-client", "grpcio", "grpcio-status", "protobuf",
                       "googleapis-common-protos", "typing-extensions"}  # fmt: skip


def available_pythons() -> dict[str, str]:
    """minor version -> interpreter, for 3.11 (this one), 3.12 and 3.13 where installed."""
    found = {f"{sys.version_info.major}.{sys.version_info.minor}": sys.executable}
    for minor in ("3.12", "3.13"):
        candidates = [shutil.which(f"python{minor}") or ""]
        candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{minor}*/bin/python")))
        for candidate in candidates:
            if candidate and _runs(candidate):
                found[minor] = candidate
                break
    return found


def _runs(python: str) -> bool:
    return subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0


async def run(*command: str | Path, cwd: Path | None = None) -> str:
    """The program's stdout; it must succeed."""
    code, out, err = await run_process(*command, cwd=cwd)
    assert code == 0, f"{command}: {err[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    asyncio.run(run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", out, ROOT / "clients"))  # fmt: skip
    (built,) = out.glob("chatbot_client-*.whl")
    return built


async def install(python: str, wheel: Path, folder: Path) -> Path:
    """A new virtual environment holding the wheel and its dependencies only."""
    await run(python, "-m", "venv", folder)
    venv_python = folder / "bin" / "python"
    await run(venv_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--constraint", ROOT / "requirements.lock", wheel)  # fmt: skip
    return venv_python


async def test_the_wheel_installs_alone_and_works_on_each_python(
    server: RunningServer, database: MigratedDatabase, wheel: Path, tmp_path: Path
) -> None:
    await truncate_documents(database.owner_url)
    pdf = tmp_path / "xpd42.pdf"
    pdf.write_bytes(manual_pdf())
    pythons = available_pythons()
    print(f"client package checked on Python {', '.join(sorted(pythons))}")
    venvs = await asyncio.gather(
        *(install(python, wheel, tmp_path / f"venv-{minor}") for minor, python in pythons.items())
    )
    for venv_python in venvs:
        listed = json.loads(await run(venv_python, "-m", "pip", "list", "--format", "json"))
        installed = {package["name"].lower().replace("_", "-") for package in listed}
        assert installed - {"pip", "setuptools"} <= CLIENT_DEPENDENCIES
        report = json.loads(await run(venv_python, PROGRAM, server.address, pdf))
        assert report["health"] == "SERVING" and report["status"] == "DOCUMENT_STATUS_READY"
        assert "blinks red" in str(report["answer"]) and report["finish_reason"] == "stop"
        assert report["event_kinds"][:2] == ["AnswerStarted", "RetrievedChunks"]
        assert report["event_kinds"][-2:] == ["Usage", "AnswerFinished"]
        assert 3 in report["retrieved_pages"]
        assert report["not_found"] == ["NOT_FOUND", "DOCUMENT_NOT_FOUND"]
        assert report["invalid_fields"] == ["top_k"]
        assert report["caught_as_base_class"] == "InvalidArgumentError"
        assert report["async_grounding"] == "answered"
        version = ".".join(str(report["python"]).split(".")[:2])
        assert pythons[version]
        help_text = await run(venv_python.parent / "chatbot", "--help")
        assert "documents" in help_text and "--json" in help_text


async def test_a_downstream_program_type_checks_strictly_against_the_wheel(
    wheel: Path, tmp_path: Path
) -> None:
    venv_python = await install(sys.executable, wheel, tmp_path / "venv")
    # Outside the project, so that only the installed wheel's types are seen.
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    shutil.copy(PROGRAM, tmp_path / "uses_the_client.py")
    out = await run(sys.executable, "-m", "mypy", "--python-executable", venv_python,
                    "uses_the_client.py", cwd=tmp_path)  # fmt: skip
    assert "Success: no issues found" in out
