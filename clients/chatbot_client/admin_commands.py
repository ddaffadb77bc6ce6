"""The `chatbot` commands that need an admin key: costs, budget, experiments, keys, limits."""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from chatbot.v1 import admin_service_pb2 as pb
from chatbot_client.output import local_time, print_json
from chatbot_client.sync_client import SyncChatbotClient

Handler = Callable[[SyncChatbotClient, argparse.Namespace], int]
AddParser = Callable[..., argparse.ArgumentParser]
RULE, THIN = "=" * 70, "-" * 70
_LEVELS = {
    pb.BUDGET_LEVEL_NORMAL: "normal",
    pb.BUDGET_LEVEL_WARNING: "warning",
    pb.BUDGET_LEVEL_BLOCKED: "blocked",
}
_ROLES = {"client": pb.API_KEY_ROLE_CLIENT, "admin": pb.API_KEY_ROLE_ADMIN}
_OUTCOMES = {
    "ok": pb.AUDIT_OUTCOME_OK,
    "refused": pb.AUDIT_OUTCOME_REFUSED,
    "failed": pb.AUDIT_OUTCOME_FAILED,
}
_CSV_COLUMNS = ["group", "key", "requests", "prompt_tokens", "completion_tokens", "cost_usd",
                "cost_per_request_usd", "mean_latency_ms", "errors"]  # fmt: skip
_VARIANT_FIELDS = {"name", "weight", "model", "top_k", "temperature", "system_prompt"}


def add_admin_commands(commands: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Adds the admin commands; `add(subparsers, name, help=...)` makes each parser."""
    report = add(commands, "cost-report", help="costs of the last days, as cost_report printed")
    report.add_argument("--days", type=int, default=7)
    report.add_argument("--by-model", action="store_true", help="break costs down by model")
    report.add_argument("--by-method", action="store_true", help="break costs down by RPC")
    report.add_argument("--csv", type=Path, help="also write every figure to this CSV file")
    report.set_defaults(handler=_cost_report)

    budget = add(commands, "budget", help="today's spending against the daily budget")
    budget.add_argument("--key", default="", help="also show this API key's budget (id)")
    budget.set_defaults(handler=_budget)

    experiments = add(commands, "experiments", help="A/B experiments").add_subparsers(
        dest="action", required=True
    )
    create = add(experiments, "create", help="create (and with --start, run) an experiment")
    create.add_argument("name")
    create.add_argument(
        "--variant",
        action="append",
        required=True,
        help="name=control,weight=50[,model=...,top_k=5,temperature=0.7,system_prompt=...] "
        "(repeat; system_prompt last, as it may hold commas)",
    )
    create.add_argument("--description", default="")
    create.add_argument("--start", action="store_true", help="make it the active experiment")
    create.set_defaults(handler=_create_experiment)
    add(experiments, "list", help="experiments, newest first").set_defaults(
        handler=_list_experiments
    )
    show = add(experiments, "show", help="an experiment and how its variants compare")
    show.add_argument("experiment_id")
    show.set_defaults(handler=_show_experiment)
    stop = add(experiments, "stop", help="stop assigning answers to an experiment")
    stop.add_argument("experiment_id")
    stop.set_defaults(handler=_stop_experiment)

    keys = add(commands, "keys", help="API keys").add_subparsers(dest="action", required=True)
    new_key = add(keys, "create", help="create a key; its secret is printed once, last")
    new_key.add_argument("--name", required=True)
    new_key.add_argument("--role", required=True, choices=tuple(_ROLES))
    new_key.add_argument("--daily-budget-usd", type=float)
    new_key.add_argument("--rate-limit", default="", help="e.g. 5000/hour")
    new_key.add_argument("--expires-in", type=_duration, metavar="SPAN",
                         help="the key stops working this long from now: 90d, 12h")  # fmt: skip
    new_key.set_defaults(handler=_create_key)
    rotate = add(keys, "rotate", help="give a key a new secret, printed once, last")
    rotate.add_argument("key", metavar="ID|PREFIX")
    rotate.add_argument("--overlap", type=_duration, metavar="SPAN",
                        help="how long the old secret keeps working (default: 24h)")  # fmt: skip
    rotate.add_argument("--expires-in", type=_duration, metavar="SPAN",
                        help="a new expiry from now (default: keep the key's)")  # fmt: skip
    rotate.set_defaults(handler=_rotate_key)
    listed = add(keys, "list", help="keys, newest first, without secrets")
    listed.add_argument("--all", action="store_true", help="include revoked keys")
    listed.set_defaults(handler=_list_keys)
    revoke = add(keys, "revoke", help="revoke a key by id or by its shown prefix")
    revoke.add_argument("key", metavar="ID|PREFIX")
    revoke.set_defaults(handler=_revoke_key)

    audit = add(commands, "audit", help="the audit trail of admin actions, newest first")
    audit.add_argument("--actor", default="", help="e.g. key:<id>, os:root, ip:203.0.113.7")
    audit.add_argument("--action", default="", help="actions containing this, e.g. ApiKey")
    audit.add_argument("--outcome", choices=tuple(_OUTCOMES), help="only this outcome")
    audit.add_argument("--since", type=_duration, metavar="SPAN", help="only the last 24h, 7d…")
    audit.add_argument("--limit", type=_count, default=50, help="at most this many (%(default)s)")
    audit.set_defaults(handler=_audit)

    clear = add(commands, "clear-rate-limits", help="forget counted calls (all, or one identity)")
    clear.add_argument("--identity", default="", help="e.g. key:<id> or ip:<address>")
    clear.set_defaults(handler=_clear_rate_limits)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.6f}".rstrip("0").rstrip(".")


def _cost_report(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    report = client.cost_report(args.days)
    if args.json:
        return print_json(report)
    start = report.start_time.ToDatetime().date()
    end = report.end_time.ToDatetime().date()
    total = report.total
    print(f"{RULE}\nCost Report: {start} to {end}\n{RULE}\n")
    print(f"Total Requests: {total.request_count:,}")
    print(f"Total Cost: {_usd(total.cost_usd)}")
    print(f"Total Tokens: {total.prompt_tokens + total.completion_tokens:,}")
    print(f"Average Latency: {total.mean_latency_ms:.0f}ms")
    print(f"Cost per Request: {_usd(total.cost_per_request_usd)}")
    sections = [("Model", report.by_model)] if args.by_model else []
    sections += [("Method", report.by_method)] if args.by_method else []
    for title, rows in sections:
        print(f"\n{THIN}\nBreakdown by {title}:\n{THIN}")
        for row in rows:
            print(f"\n{row.key or '(none)'}:\n  Requests: {row.request_count:,}\n"
                  f"  Cost: {_usd(row.cost_usd)}\n"
                  f"  Tokens: {row.prompt_tokens + row.completion_tokens:,}\n"
                  f"  Avg Cost/Request: {_usd(row.cost_per_request_usd)}")  # fmt: skip
    print(f"\n{THIN}\nDaily Breakdown:\n{THIN}")
    for day in report.by_day:
        print(f"{day.key}: {day.request_count:,} requests, {_usd(day.cost_usd)}")
    budget = report.budget
    mark = "✓" if budget.level == pb.BUDGET_LEVEL_NORMAL else "!"
    print(f"\n{RULE}\nToday's Budget: {_usd(budget.spent_usd)} / {_usd(budget.budget_usd)}")
    print(f"{mark} Budget usage: {budget.used_fraction * 100:.1f}%\n{RULE}")
    if args.csv:
        _write_csv(args.csv, report)
        print(f"written to {args.csv}", file=sys.stderr)
    return 0


def _write_csv(path: Path, report: pb.GetCostReportResponse) -> None:
    groups = [("total", [report.total]), ("model", report.by_model),
              ("method", report.by_method), ("day", report.by_day),
              ("variant", report.by_variant)]  # fmt: skip
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(_CSV_COLUMNS)
        for group, rows in groups:
            for row in rows:
                writer.writerow([group, row.key, row.request_count, row.prompt_tokens,
                                 row.completion_tokens, f"{row.cost_usd:.6f}",
                                 f"{row.cost_per_request_usd:.6f}", f"{row.mean_latency_ms:.1f}",
                                 row.error_count])  # fmt: skip


def _budget_line(status: pb.BudgetStatus) -> str:
    whose = "Today's budget" if status.scope == "global" else f"Key {status.scope}"
    return (
        f"{whose} (UTC {status.day}): {_usd(status.spent_usd)} / {_usd(status.budget_usd)} "
        f"({status.used_fraction * 100:.1f}%, {_LEVELS.get(status.level, '?')}); "
        f"reserved {_usd(status.reserved_usd)}; resets "
        f"{status.reset_time.ToDatetime().isoformat()}Z"
    )


def _budget(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    response = client.budget_status(args.key)
    if args.json:
        return print_json(response)
    print(_budget_line(response.budget))
    if response.HasField("key_budget"):
        print(_budget_line(response.key_budget))
    return 0


def _parse_variant(spec: str) -> pb.ExperimentVariant:
    values: dict[str, str] = {}
    rest = spec
    while rest:
        field, _, rest = rest.partition("=")
        field = field.strip()
        if field not in _VARIANT_FIELDS:
            raise SystemExit(f"chatbot: unknown variant field {field!r} in {spec!r}")
        if field == "system_prompt":
            values[field], rest = rest, ""
        else:
            values[field], _, rest = rest.partition(",")
    try:
        return pb.ExperimentVariant(
            name=values.get("name", ""),
            weight=int(values.get("weight", "1")),
            llm_model=values.get("model", ""),
            top_k=int(values.get("top_k", "0")),
            temperature=float(values.get("temperature", "0")),
            system_prompt=values.get("system_prompt", ""),
        )
    except ValueError as error:
        raise SystemExit(f"chatbot: bad variant {spec!r}: {error}") from None


def _create_experiment(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    experiment = client.create_experiment(
        pb.Experiment(
            name=args.name,
            description=args.description,
            variants=[_parse_variant(spec) for spec in args.variant],
            active=args.start,
        )
    )
    if args.json:
        return print_json(experiment)
    print(_experiment_line(experiment))
    return 0


def _experiment_line(experiment: pb.Experiment) -> str:
    state = "active " if experiment.active else "stopped"
    arms = ", ".join(f"{v.name}:{v.weight}" for v in experiment.variants)
    return f"{experiment.experiment_id}  {state}  {experiment.name}  ({arms})"


def _list_experiments(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    experiments = client.list_experiments()
    if args.json:
        return print_json(experiments)
    for experiment in experiments:
        print(_experiment_line(experiment))
    return 0


def _show_experiment(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    results = client.experiment_results(args.experiment_id)
    if args.json:
        return print_json(results)
    print(_experiment_line(results.experiment))
    if results.experiment.description:
        print(results.experiment.description)
    print(f"\n{'variant':<16}{'answers':>8}{'cost':>12}{'per answer':>12}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}{'positive':>10}")  # fmt: skip
    for v in results.variants:
        print(f"{v.variant:<16}{v.answer_count:>8}"
              f"{_usd(v.cost_usd):>12}{_usd(v.cost_per_answer_usd):>12}"
              f"{v.p50_latency_ms:>9.0f}{v.p95_latency_ms:>9.0f}{v.error_count:>8}"
              f"{v.positive_fraction * 100:>9.0f}%")  # fmt: skip
    return 0


def _stop_experiment(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    stopped = client.stop_experiment(args.experiment_id)
    if args.json:
        return print_json(stopped)
    print(_experiment_line(stopped))
    return 0


def _key_line(key: pb.ApiKey) -> str:
    role = "admin" if key.role == pb.API_KEY_ROLE_ADMIN else "client"
    budget = (
        f"{_usd(key.daily_budget_usd)}/day" if key.HasField("daily_budget_usd") else "global budget"
    )
    state = "revoked" if key.revoked else "active"
    limit = f"  limit {key.rate_limit}" if key.rate_limit else ""
    expiry = f"  expires {_minute(key.expire_time)}" if key.HasField("expire_time") else ""
    overlap = (
        f"  old secret until {_minute(key.previous_secret_expire_time)}"
        if key.HasField("previous_secret_expire_time")
        else ""
    )
    return (
        f"{key.api_key_id}  {key.prefix}…  {role:<6} {state:<7} {budget}{limit}{expiry}{overlap}"
        f"  {key.name}"
    )


def _minute(moment: Timestamp) -> str:
    return f"{moment.ToDatetime():%Y-%m-%d %H:%M}Z"


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of 1 or more, not {text!r}")
    return int(text)


def _duration(text: str) -> timedelta:
    """'90d', '12h', '30m', '45s', '2w'."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"write a span like 90d, 12h, 30m or 45s, not {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _create_key(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    created = client.create_api_key(
        args.name, _ROLES[args.role], daily_budget_usd=args.daily_budget_usd,
        rate_limit=args.rate_limit, expires_in=args.expires_in,
    )  # fmt: skip
    return _print_secret(created, args.json)


def _rotate_key(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    key = _one_key(client, args.key)
    if key is None:
        return 1
    rotated = client.rotate_api_key(
        key.api_key_id, overlap=args.overlap, expires_in=args.expires_in
    )
    return _print_secret(rotated, args.json)


def _print_secret(
    response: pb.CreateApiKeyResponse | pb.RotateApiKeyResponse, as_json: bool
) -> int:
    if as_json:
        return print_json(response)
    print(_key_line(response.api_key))
    print("The secret is shown only now; send it as 'authorization: Bearer <secret>':")
    print(response.secret)
    return 0


def _list_keys(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    keys = client.list_api_keys(args.all)
    if args.json:
        return print_json(keys)
    for key in keys:
        print(_key_line(key))
    return 0


def _one_key(client: SyncChatbotClient, wanted: str) -> pb.ApiKey | None:
    """The key with this id, or the one whose shown prefix starts with this; None (said on
    stderr) when there is none or more than one."""
    wanted = wanted.strip()
    matches = [
        key
        for key in client.list_api_keys(show_revoked=True)
        if key.api_key_id == wanted or (len(wanted) >= 6 and key.prefix.startswith(wanted))
    ]
    if len(matches) != 1:
        problem = "no key has" if not matches else f"{len(matches)} keys have"
        print(f"chatbot: {problem} the id or prefix {wanted!r}", file=sys.stderr)
        return None
    return matches[0]


def _revoke_key(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    key = _one_key(client, args.key)
    if key is None:
        return 1
    revoked = client.revoke_api_key(key.api_key_id)
    if args.json:
        return print_json(revoked)
    print(_key_line(revoked))
    return 0


def _audit(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - args.since if args.since else None
    events = client.list_audit_events(
        actor=args.actor,
        action=args.action,
        outcome=_OUTCOMES.get(args.outcome, pb.AUDIT_OUTCOME_UNSPECIFIED),
        since=since,
        page_size=min(args.limit, 100),
    )
    shown = list(itertools.islice(events, args.limit))
    if args.json:
        return print_json(shown)
    for event in shown:
        who = f"{event.actor} ({event.actor_name})" if event.actor_name else event.actor
        outcome = pb.AuditOutcome.Name(event.outcome).removeprefix("AUDIT_OUTCOME_").lower()
        target = f" {event.target}" if event.target else ""
        error = f"  {event.status_code}: {event.error_message}" if event.error_message else ""
        print(f"{local_time(event.occur_time)}  {outcome:<7} {event.action}{target}  {who}{error}")
    return 0


def _clear_rate_limits(client: SyncChatbotClient, args: argparse.Namespace) -> int:
    cleared = client.clear_rate_limits(args.identity)
    if args.json:
        return print_json({"cleared_count": cleared})
    print(f"cleared {cleared} rate-limit counters of {args.identity or 'every identity'}")
    return 0
