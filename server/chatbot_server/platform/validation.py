"""Checks of request fields, each failing with INVALID_ARGUMENT that names the field."""

from __future__ import annotations

import re
from uuid import UUID

from chatbot_server.platform.errors import bad_request

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def parse_uuid(field: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise bad_request(field, f"must be a UUID, got {value[:60]!r}") from None


def bounded_text(field: str, value: str, maximum: int, *, required: bool = False) -> str:
    if "\x00" in value:
        raise bad_request(field, "must not contain NUL characters (U+0000)")
    value = value.strip()
    if required and not value:
        raise bad_request(field, "must not be empty")
    if len(value) > maximum:
        raise bad_request(field, f"must be at most {maximum} characters, got {len(value)}")
    return value


def language_code(field: str, value: str) -> str:
    value = value.strip()
    if value and not _LANGUAGE.match(value):
        raise bad_request(
            field, f"must be a BCP-47 language code such as 'en' or 'de-AT', got {value!r}"
        )
    return value.lower()


def bounded_int(field: str, value: int, default: int, maximum: int) -> int:
    """0 means the default; otherwise 1..maximum."""
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise bad_request(field, f"must be from 1 to {maximum}, or 0 for the default")
    return value
