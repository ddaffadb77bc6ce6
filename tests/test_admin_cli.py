"""The admin side of the `chatbot` command, as an operator runs it with an admin key."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tests.commands import chatbot
from tests.databases import MigratedDatabase
from tests.governance_support import new_key
from tests.servers import RunningServer


async def test_admin_commands_need_an_admin_key(server: RunningServer) -> None:
    code, _, err = await chatbot(server, "budget")
    assert code == 4  # EXIT_DENIED
    assert "PERMISSION_DENIED" in err and "admin role" in err


async def test_cost_report_budget_and_rate_limits_with_an_admin_key(
    server: RunningServer, database: MigratedDatabase, tmp_path: Path
) -> None:
    _, secret = await new_key(database.app_url, "cli-admin", "admin")
    report = tmp_path / "costs.csv"
    code, out, err = await chatbot(
        server, "cost-report", "--days", "3", "--by-model", "--by-method",
        "--csv", str(report), "--api-key", secret,
    )  # fmt: skip
    assert code == 0, err
    assert "Cost Report:" in out and "Total Requests:" in out and "Daily Breakdown:" in out
    assert "Breakdown by Model:" in out and "Breakdown by Method:" in out
    assert "Today's Budget:" in out and "Budget usage:" in out
    rows = list(csv.DictReader(report.open()))
    assert [r["group"] for r in rows].count("day") == 3
    assert rows[0]["group"] == "total"

    environment_key = {"CHATBOT_API_KEY": secret}
    code, out, err = await chatbot(server, "budget", env=environment_key)
    assert code == 0, err
    assert out.startswith("Today's budget (UTC ") and "$50.00" in out

    code, out, err = await chatbot(server, "clear-rate-limits", "--api-key", secret)
    assert code == 0, err
    assert out.startswith("cleared ")


async def test_experiments_and_keys_from_the_command_line(
    server: RunningServer, database: MigratedDatabase
) -> None:
    _, secret = await new_key(database.app_url, "cli-experimenter", "admin")
    code, out, err = await chatbot(
        server, "--api-key", secret, "experiments", "create", "cli-prompt-test",
        "--variant", "name=control,weight=1",
        "--variant", "name=terse,weight=1,top_k=3,system_prompt=Answer briefly, citing [n].",
    )  # fmt: skip
    assert code == 0, err
    experiment_id = out.split()[0]
    code, out, _ = await chatbot(server, "--api-key", secret, "experiments", "list")
    assert experiment_id in out and "cli-prompt-test" in out
    code, out, err = await chatbot(
        server, "--api-key", secret, "experiments", "show", experiment_id
    )
    assert code == 0, err
    assert "control" in out and "terse" in out and "p95 ms" in out
    code, out, _ = await chatbot(server, "--api-key", secret, "experiments", "stop", experiment_id)
    assert "stopped" in out

    code, out, err = await chatbot(
        server, "--api-key", secret, "keys", "create", "--name", "cli-made", "--role", "client",
        "--daily-budget-usd", "1.5",
    )  # fmt: skip
    assert code == 0, err
    made_secret = out.strip().splitlines()[-1]
    prefix = made_secret[:12]
    code, out, _ = await chatbot(server, "--api-key", secret, "keys", "list")
    assert prefix in out and "$1.50/day" in out
    code, out, err = await chatbot(server, "--api-key", secret, "keys", "revoke", prefix)
    assert code == 0, err
    assert "revoked" in out
    code, _, err = await chatbot(server, "--api-key", made_secret, "conversations", "list")
    assert code == 4 and "UNAUTHENTICATED" in err


async def test_admin_commands_print_json_that_parses(
    server: RunningServer, database: MigratedDatabase
) -> None:
    _, secret = await new_key(database.app_url, "cli-json", "admin")

    async def as_json(*args: str) -> Any:
        code, out, err = await chatbot(server, "--api-key", secret, *args, "--json")
        assert code == 0, err
        return json.loads(out)

    report = await as_json("cost-report", "--days", "2")
    assert report["total"]["key"] == "total" and len(report["by_day"]) == 2
    assert (await as_json("budget"))["budget"]["scope"] == "global"
    created = await as_json(
        "experiments", "create", "json-test", "--variant", "name=a,weight=1",
        "--variant", "name=b,weight=1",
    )  # fmt: skip
    experiment_id = created["experiment_id"]
    assert experiment_id in [e["experiment_id"] for e in await as_json("experiments", "list")]
    shown = await as_json("experiments", "show", experiment_id)
    assert [v["variant"] for v in shown["variants"]] == ["a", "b"]
    assert (await as_json("experiments", "stop", experiment_id))["active"] is False
    key = await as_json("keys", "create", "--name", "json-made", "--role", "client")
    assert key["secret"].startswith("cbk_")
    assert key["api_key"]["api_key_id"] in [k["api_key_id"] for k in await as_json("keys", "list")]
    assert (await as_json("keys", "revoke", key["api_key"]["api_key_id"]))["revoked"] is True
    assert "cleared_count" in await as_json("clear-rate-limits")
