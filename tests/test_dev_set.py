"""The dev set's verification script keeps the committed questions honest (the manuals
themselves are fetched only by `make eval`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "verify_dev_set.py"


def verify(dev_set: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dev-set", str(dev_set)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_committed_dev_set_has_its_shape() -> None:
    result = verify(ROOT / "eval" / "dev_set")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_the_verification_refuses_questions_that_break_the_rules(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "eval" / "dev_set", tmp_path, dirs_exist_ok=True)
    questions = json.loads((tmp_path / "en.json").read_text())
    literal = next(q for q in questions if q["kind"] == "literal")
    questions += [
        # Everyday wording that copies its evidence.
        {**literal, "kind": "everyday", "question": f"{literal['evidence'][0]}?"},
        # A cross-lingual question in its document's own language.
        {**literal, "kind": "cross_lingual", "question": "Is this cross-lingual at all?"},
        {"document": "R-intro", "language": "en", "kind": "unanswerable",
         "question": "What about a question with no key terms?", "absent_terms": []},
    ]  # fmt: skip
    (tmp_path / "en.json").write_text(json.dumps(questions))
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "shares four words with its evidence" in result.stdout
    assert "a cross_lingual question in en about a en manual" in result.stdout
    assert "unanswerable questions name key terms, not pages" in result.stdout
