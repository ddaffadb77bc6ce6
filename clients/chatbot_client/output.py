"""How the command line prints: JSON for programs, local times and sizes for people."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from chatbot_client.errors import ChatbotError


def jsonable(value: Any) -> Any:
    """Messages in the proto3 JSON mapping with the .proto field names; dataclasses, lists and
    errors as plain objects."""
    if isinstance(value, Message):
        return MessageToDict(
            value, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    if isinstance(value, ChatbotError):
        return {"code": value.code.name, "message": value.message, "reason": value.reason}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [jsonable(item) for item in value]
    return value


def print_json(value: Any) -> int:
    """Prints `value` as indented JSON; returns the success exit code for handlers."""
    print(json.dumps(jsonable(value), indent=2, ensure_ascii=False))
    return 0


def local_time(timestamp: Timestamp) -> str:
    """A stored time in the reader's time zone, e.g. "2026-12-03 09:14:05 CET"; "-" if unset."""
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    moment = timestamp.ToDatetime(tzinfo=UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def size(byte_count: int) -> str:
    """1234567 -> "1.2 MB"."""
    if byte_count < 1000:
        return f"{byte_count} bytes"
    amount = byte_count / 1000
    for unit in ("KB", "MB"):
        if amount < 1000:
            return f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"
