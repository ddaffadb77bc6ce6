"""API keys: secrets made here, stored as SHA-256 only, and read back from call metadata."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

SECRET_PREFIX = "cbk_"
# Characters of the secret stored in the clear, to recognise a key in lists.
SHOWN_PREFIX_CHARS = 12
ROLES = ("client", "admin")


class MalformedCredentials(ValueError):
    """The call carried credentials that are not an API key in a form this service reads."""


@dataclass(frozen=True)
class ApiKeyRecord:
    id: UUID
    name: str
    role: str
    prefix: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    daily_budget_micro_usd: int | None
    rate_limit: str
    expires_at: datetime | None
    # When the secret a rotation replaced stops working; None when there is none.
    previous_secret_expires_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class KeyMatch:
    """The key a secret belongs to, and whether it is the secret a rotation replaced."""

    key: ApiKeyRecord
    previous_secret: bool

    def refusal(self, now: datetime) -> str | None:
        """Why this secret no longer works (expired, or replaced past its overlap)."""
        key = self.key
        if key.revoked:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= now:
            return "expired"
        end = key.previous_secret_expires_at
        if self.previous_secret and (end is None or end <= now):
            return "rotated"
        return None


def new_secret() -> str:
    """A fresh secret: the prefix and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_from_metadata(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The API key in `authorization: Bearer KEY` or `x-api-key: KEY`; None when neither is
    sent. Raises MalformedCredentials for a header that is present but unusable."""
    found: str | None = None
    for key, value in metadata or ():
        if key not in ("authorization", "x-api-key"):
            continue
        if not isinstance(value, str):
            raise MalformedCredentials(f"{key} must be text")
        value = value.strip()
        if key == "authorization":
            scheme, _, value = value.partition(" ")
            if scheme.lower() != "bearer":
                raise MalformedCredentials("authorization must be 'Bearer <API key>'")
            value = value.strip()
        if not value or len(value) > 200 or not value.isascii() or not value.isprintable():
            raise MalformedCredentials(f"{key} does not hold an API key")
        if found is not None and found != value:
            raise MalformedCredentials("authorization and x-api-key name different keys")
        found = value
    return found
